using Microsoft.Extensions.Logging;

namespace Behemoth.Runtime.Hosting;

/// <summary>
/// Opens one registered package with <see cref="Model.OpenAsync"/>, once, and owns the <see cref="Model"/> it opened.
/// <c>AddBehemothChatClient</c> registers one per package (keyed like the chat client): the load starts when the
/// container first resolves the chat client or this loader (so it runs while the app starts, not on a request
/// thread), every caller awaits the same load, and disposing the container waits for a load in flight and then
/// disposes the model.
/// </summary>
/// <remarks>
/// A failed load is not retried: every later <see cref="GetModelAsync"/> (and every request on the chat client)
/// throws its exception, as a missing or corrupt package stays so until the app is fixed and restarted.
/// </remarks>
public sealed class BehemothModelLoader : IDisposable, IAsyncDisposable
{
    private readonly ModelOptions _options;
    private readonly CancellationTokenSource _disposing = new();
    private readonly object _gate = new();
    private Task<Model>? _load;
    private bool _disposed;

    internal BehemothModelLoader(string packageDirectory, ModelOptions options, ILoggerFactory? loggers)
    {
        PackageDirectory = packageDirectory;
        // the container's logger unless the options carry one: one SessionOpened line when the model is open
        _options = options.Logger is null && loggers is not null
            ? options with { Logger = loggers.CreateLogger(typeof(DecoderSession).FullName!) }
            : options;
    }

    /// <summary>The package directory this loader opens.</summary>
    public string PackageDirectory { get; }

    /// <summary>The options the model is opened with (profile or memory budget, provider, threads).</summary>
    public ModelOptions Options => _options;

    /// <summary>True once the model is open (a resolve of <see cref="Model"/> then returns at once).</summary>
    public bool IsLoaded => _load is { IsCompletedSuccessfully: true };

    /// <summary>
    /// The model: starts the load on the first call, and completes when it is open. <paramref name="cancellationToken"/>
    /// cancels this wait only; the load goes on for the other callers (disposing the container cancels it).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The container has been disposed.</exception>
    public Task<Model> GetModelAsync(CancellationToken cancellationToken = default) => Start().WaitAsync(cancellationToken);

    /// <summary>Starts the load (if not started yet) and returns it.</summary>
    internal Task<Model> Start()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _load ??= Model.OpenAsync(PackageDirectory, _options, progress: null, _disposing.Token);
        }
    }

    /// <summary>The model, waiting for the load when it is still running (synchronous resolves of <see cref="Model"/>).</summary>
    internal Model GetModel() => Start().GetAwaiter().GetResult();

    /// <summary>Cancels a load in flight (it stops between stages), waits for it and disposes the model it opened.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>As <see cref="Dispose"/>, awaiting the load instead of blocking on it.</summary>
    public async ValueTask DisposeAsync()
    {
        Task<Model>? load;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            load = _load;
        }
        _disposing.Cancel();
        if (load is not null)
        {
            try
            {
                (await load.ConfigureAwait(false)).Dispose();
            }
            catch (Exception)
            {
                // a load that failed or was cancelled left nothing open (Model.Open disposes what it made)
            }
        }
        _disposing.Dispose();
    }
}
