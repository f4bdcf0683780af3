using System.Diagnostics.Metrics;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Behemoth.Runtime.Hosting;

/// <summary>Registers a Behemoth package as the container's <see cref="IChatClient"/> (one per key).</summary>
/// <remarks>
/// <para>
/// The package is opened asynchronously (<see cref="Model.OpenAsync"/>, by a <see cref="BehemothModelLoader"/>): a
/// load takes seconds (the files' SHA-256 checks, then ONNX Runtime building the session), and a container's
/// factories are synchronous, so opening inside one would hold the thread of whichever request resolved the client
/// first for all that time. Instead resolving the <see cref="IChatClient"/> starts the load and returns at once; its
/// requests await the load. Resolving <see cref="Model"/> or <see cref="BehemothChatClient"/> directly waits for the
/// load when it is still running: await <see cref="GetBehemothModelAsync"/> at startup (before the app serves
/// requests) to have it done by then.
/// </para>
/// <para>
/// The container owns the model: disposing it disposes the chat client, which ends its streams in progress with
/// <see cref="ObjectDisposedException"/>, then the model's session.
/// </para>
/// </remarks>
public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Registers the package in <paramref name="packageDirectory"/> as the container's <see cref="IChatClient"/>, with
    /// the package's own tokenizer, chat template and stop ids (<see cref="Model.AsChatClient"/>), and as singletons
    /// its <see cref="BehemothModelLoader"/>, <see cref="Model"/>, <see cref="BehemothChatClient"/> and
    /// <see cref="RuntimeMetrics"/>. The container's <see cref="ILoggerFactory"/> and <see cref="IMeterFactory"/> are
    /// used when it has them (no logging, and <see cref="RuntimeMetrics.Shared"/>, when not).
    /// </summary>
    /// <param name="services">The container's services.</param>
    /// <param name="packageDirectory">The package (the directory `behemoth export` wrote).</param>
    /// <param name="options">Profile or memory budget, provider, threads (default: the "full" profile on the best provider).</param>
    /// <param name="configure">Sets the client's prompt formatter, default generation options and model id.</param>
    /// <returns>Microsoft.Extensions.AI's builder of the <see cref="IChatClient"/> pipeline, for <c>.UseLogging()</c>,
    /// <c>.UseFunctionInvocation()</c> and the like.</returns>
    /// <remarks>One unkeyed package per container: a second call replaces the first (use
    /// <see cref="AddKeyedBehemothChatClient"/> for several).</remarks>
    public static ChatClientBuilder AddBehemothChatClient(this IServiceCollection services, string packageDirectory, ModelOptions? options = null,
        Action<BehemothChatClientOptions>? configure = null)
        => Add(services, serviceKey: null, packageDirectory, options, configure);

    /// <summary>
    /// As <see cref="AddBehemothChatClient"/>, under <paramref name="serviceKey"/>: the <see cref="IChatClient"/>,
    /// <see cref="Model"/>, <see cref="BehemothChatClient"/> and <see cref="BehemothModelLoader"/> are keyed services,
    /// so several packages or profiles coexist in one app (a glasses and a phone profile, say), each opened once.
    /// </summary>
    /// <param name="services">The container's services.</param>
    /// <param name="serviceKey">The key to resolve them with (<c>[FromKeyedServices(key)]</c>, <c>GetRequiredKeyedService</c>).</param>
    /// <param name="packageDirectory">The package (the directory `behemoth export` wrote).</param>
    /// <param name="options">Profile or memory budget, provider, threads (default: the "full" profile on the best provider).</param>
    /// <param name="configure">Sets the client's prompt formatter, default generation options and model id.</param>
    /// <returns>Microsoft.Extensions.AI's builder of the keyed <see cref="IChatClient"/> pipeline.</returns>
    public static ChatClientBuilder AddKeyedBehemothChatClient(this IServiceCollection services, object serviceKey, string packageDirectory,
        ModelOptions? options = null, Action<BehemothChatClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        return Add(services, serviceKey, packageDirectory, options, configure);
    }

    /// <summary>
    /// The model registered under <paramref name="serviceKey"/> (null: the unkeyed one), once it is open: starts the
    /// load if nothing has yet. Await it at startup so that requests find the model loaded.
    /// </summary>
    /// <param name="services">The built container.</param>
    /// <param name="serviceKey">The key the package was registered with, or null for <see cref="AddBehemothChatClient"/>'s.</param>
    /// <param name="cancellationToken">Cancels this wait (the load itself goes on).</param>
    public static Task<Model> GetBehemothModelAsync(this IServiceProvider services, object? serviceKey = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(services);
        var loader = serviceKey is null
            ? services.GetRequiredService<BehemothModelLoader>()
            : services.GetRequiredKeyedService<BehemothModelLoader>(serviceKey);
        return loader.GetModelAsync(cancellationToken);
    }

    private static ChatClientBuilder Add(IServiceCollection services, object? serviceKey, string packageDirectory, ModelOptions? options,
        Action<BehemothChatClientOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(packageDirectory);
        options ??= new ModelOptions();
        options.Validate();
        var clientOptions = new BehemothChatClientOptions();
        configure?.Invoke(clientOptions);

        services.TryAddSingleton(sp => sp.GetService<IMeterFactory>() is { } meters ? new RuntimeMetrics(meters) : RuntimeMetrics.Shared);
        // registered so that the container disposes them, the chat client first (it was created after the model)
        services.Add(ServiceDescriptor.KeyedSingleton<BehemothModelLoader>(serviceKey, (sp, _) => new BehemothModelLoader(packageDirectory, options, sp.GetService<ILoggerFactory>())));
        services.Add(ServiceDescriptor.KeyedSingleton<Model>(serviceKey, (sp, key) => Loader(sp, key).GetModel()));
        services.Add(ServiceDescriptor.KeyedSingleton<BehemothChatClient>(serviceKey, (sp, key) =>
            (key is null ? sp.GetRequiredService<Model>() : sp.GetRequiredKeyedService<Model>(key)).AsChatClient(
                Copy(clientOptions), sp.GetService<ILoggerFactory>()?.CreateLogger<BehemothChatClient>(), sp.GetRequiredService<RuntimeMetrics>())));

        IChatClient Inner(IServiceProvider sp) => new LoadingChatClient(Loader(sp, serviceKey),
            () => serviceKey is null ? sp.GetRequiredService<BehemothChatClient>() : sp.GetRequiredKeyedService<BehemothChatClient>(serviceKey),
            clientOptions.ModelId);
        return serviceKey is null ? services.AddChatClient(Inner) : services.AddKeyedChatClient(serviceKey, Inner);
    }

    private static BehemothModelLoader Loader(IServiceProvider sp, object? key) =>
        key is null ? sp.GetRequiredService<BehemothModelLoader>() : sp.GetRequiredKeyedService<BehemothModelLoader>(key);

    // AsChatClient sets the formatter on the options it is given: each client gets its own copy
    private static BehemothChatClientOptions Copy(BehemothChatClientOptions o) =>
        new() { PromptFormatter = o.PromptFormatter, Generation = o.Generation, ModelId = o.ModelId };
}
