using System.Diagnostics.Metrics;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Behemoth.Runtime.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.ML.Tokenizers;

namespace Behemoth.Runtime.Hosting;

// Microsoft.ML.Tokenizers' tokenizer, not Behemoth.Runtime.Tokenizer (the wrapper generation uses)
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

/// <summary>Registers a Behemoth package as the container's <see cref="IChatClient"/>.</summary>
public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Registers, as singletons created on first use: the <see cref="DecoderSession"/> for <paramref name="profile"/> of
    /// the package in <paramref name="packageDirectory"/> (opened on <paramref name="provider"/>, verified and logged),
    /// its <see cref="Tokenizer"/> (unless one is registered already) and chat template, <see cref="RuntimeMetrics"/>, and a <see cref="BehemothChatClient"/> that is also the
    /// <see cref="IChatClient"/>. The container's <see cref="ILoggerFactory"/> and <see cref="IMeterFactory"/> are used
    /// when it has them (no logging, and <see cref="RuntimeMetrics.Shared"/>, when not). The container disposes the session.
    /// </summary>
    /// <remarks>One package per container: a second call replaces the first's session and chat client.</remarks>
    /// <param name="configure">Sets the client's prompt formatter, default generation options and model id.</param>
    public static IServiceCollection AddBehemothChatClient(this IServiceCollection services, string packageDirectory, string profile = "full",
        ExecutionProvider provider = ExecutionProvider.Auto, Action<BehemothChatClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(packageDirectory);
        ArgumentException.ThrowIfNullOrEmpty(profile);

        services.TryAddSingleton(sp => sp.GetService<IMeterFactory>() is { } meters ? new RuntimeMetrics(meters) : RuntimeMetrics.Shared);
        services.AddSingleton(sp => SessionLoader.Open(packageDirectory, profile, provider, sp.GetService<ILoggerFactory>()?.CreateLogger(typeof(DecoderSession).FullName!)));
        bool ownTokenizer = !services.Any(d => d.ServiceType == typeof(Tokenizer));
        services.TryAddSingleton(_ => ModelTokenizer.Open(packageDirectory));
        services.TryAddSingleton(sp => sp.GetRequiredService<LoadedTokenizer>().Tokenizer);
        services.AddSingleton(sp =>
        {
            // the package's own tokenizer comes with its chat template; a caller's tokenizer gets the plain format
            // unless the caller configures another formatter
            var options = new BehemothChatClientOptions();
            if (ownTokenizer)
            {
                var loaded = sp.GetRequiredService<LoadedTokenizer>();
                options.PromptFormatter = ChatPromptFormatter.FromTemplate(ChatTemplate.ForDirectory(packageDirectory, loaded), loaded);
            }
            configure?.Invoke(options);
            return new BehemothChatClient(sp.GetRequiredService<DecoderSession>(), sp.GetRequiredService<Tokenizer>(), options,
                sp.GetService<ILoggerFactory>()?.CreateLogger<BehemothChatClient>(), sp.GetRequiredService<RuntimeMetrics>());
        });
        services.AddSingleton<IChatClient>(sp => sp.GetRequiredService<BehemothChatClient>());
        return services;
    }
}
