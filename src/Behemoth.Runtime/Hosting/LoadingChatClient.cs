using Behemoth.Runtime.Chat;
using Microsoft.Extensions.AI;

namespace Behemoth.Runtime.Hosting;

/// <summary>
/// The container's inner <see cref="IChatClient"/> for a registered package: resolving it starts the model's load and
/// returns at once; each request awaits the load (without blocking a thread) and then runs on the container's
/// <see cref="BehemothChatClient"/>. The container owns and disposes that client and the model; this one owns nothing.
/// </summary>
internal sealed class LoadingChatClient : IChatClient
{
    private readonly BehemothModelLoader _loader;
    private readonly Task<Model> _load;
    private readonly Func<BehemothChatClient> _client;
    private readonly ChatClientMetadata _metadata;

    public LoadingChatClient(BehemothModelLoader loader, Func<BehemothChatClient> client, string? modelId)
    {
        _loader = loader;
        _client = client;
        _load = loader.Start();
        // known before the load, so pipelines built around this client (UseOpenTelemetry reads it when built) have it;
        // with a memory budget the profile is chosen by the load, so the model id waits for it
        string fullPath = Path.GetFullPath(loader.PackageDirectory);
        string? id = modelId ?? (loader.Options.MemoryBudgetBytes is null
            ? $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(fullPath))}/{loader.Options.Profile}"
            : null);
        _metadata = new ChatClientMetadata(BehemothChatClient.ProviderName, new Uri(fullPath), id);
    }

    private async ValueTask<BehemothChatClient> ClientAsync(CancellationToken cancellationToken)
    {
        await _load.WaitAsync(cancellationToken).ConfigureAwait(false);
        return _client();
    }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var client = await ClientAsync(cancellationToken).ConfigureAwait(false);
        return await client.GetResponseAsync(messages, options, cancellationToken).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var client = await ClientAsync(cancellationToken).ConfigureAwait(false);
        await foreach (var update in client.GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
            yield return update;
    }

    /// <summary>
    /// This client; once the model is open, whatever the <see cref="BehemothChatClient"/> serves (itself, its metadata);
    /// before, the metadata known without loading, and null for the rest.
    /// </summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is null && serviceType.IsInstanceOfType(this)) return this;
        if (_loader.IsLoaded)
        {
            try
            {
                return _client().GetService(serviceType, serviceKey);
            }
            catch (ObjectDisposedException)
            {
                return null;        // the container is gone, and the client with it
            }
        }
        return serviceKey is null && serviceType == typeof(ChatClientMetadata) ? _metadata : null;
    }

    public void Dispose()
    {
        // the container disposes the BehemothChatClient and the model (through the loader)
    }
}
