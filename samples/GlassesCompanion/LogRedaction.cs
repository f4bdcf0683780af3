using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// Keeps the pairing token out of every log: the app's <see cref="ILoggerFactory"/> is wrapped so that every logger it
/// hands out (to ASP.NET Core, Kestrel, the app) passes on messages and structured values with the token,
/// <c>token=…</c> query parameters and whole query strings (ASP.NET Core's request log at Information level records
/// <c>?token=…</c>) replaced by <c>[redacted]</c>, to every provider (console, debug, event source, a test's own), whose
/// filters and per-provider settings apply as before. The token itself is printed once on stdout, apart from the logs
/// (which go to stderr).
/// </summary>
public static partial class LogRedaction
{
    public const string Redacted = "[redacted]";

    [GeneratedRegex(@"([?&](?:token|access_token)=)[^&#\s""']*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex TokenParameter();

    /// <summary><paramref name="text"/> without <paramref name="token"/> or a token query parameter's value.</summary>
    public static string Redact(string text, string? token)
    {
        if (!string.IsNullOrEmpty(token) && text.Contains(token, StringComparison.Ordinal)) text = text.Replace(token, Redacted, StringComparison.Ordinal);
        return text.Contains("token=", StringComparison.OrdinalIgnoreCase) ? TokenParameter().Replace(text, "$1" + Redacted) : text;
    }

    /// <summary>Wraps the <see cref="ILoggerFactory"/> of <paramref name="services"/> (registered by AddLogging).</summary>
    public static void Apply(IServiceCollection services, string? token)
    {
        var registered = services.LastOrDefault(d => d.ServiceType == typeof(ILoggerFactory) && !d.IsKeyedService)
            ?? throw new InvalidOperationException("no ILoggerFactory registered: call after AddLogging");
        if (registered.ImplementationType is not { } type)
            throw new InvalidOperationException("the ILoggerFactory is not registered by type");
        // the container builds the factory as it would have (its constructor, its providers and filter options)
        services.TryAdd(ServiceDescriptor.Singleton(type, type));
        services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp => new Factory((ILoggerFactory)sp.GetRequiredService(type), token)));
    }

    private sealed class Factory(ILoggerFactory inner, string? token) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new Logger(inner.CreateLogger(categoryName), token);

        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public void Dispose() { }       // the container disposes the inner factory, its own singleton
    }

    private sealed class Logger(ILogger inner, string? token) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel)) return;
            var redacted = new State(Redact(formatter(state, exception), token), Values(state));
            inner.Log(logLevel, eventId, redacted, exception, static (s, _) => s.Message);
        }

        private List<KeyValuePair<string, object?>> Values<TState>(TState state)
        {
            var values = new List<KeyValuePair<string, object?>>();
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
                foreach (var (key, value) in pairs)
                    values.Add(new(key, key switch
                    {
                        "QueryString" when value?.ToString() is { Length: > 0 } => "?" + Redacted,       // ASP.NET Core's request log
                        _ => value switch
                        {
                            null => null,
                            string text => Redact(text, token),
                            bool or byte or short or int or long or float or double or decimal or Enum or DateTime or DateTimeOffset or TimeSpan or Guid => value,
                            _ => Redact(value.ToString() ?? "", token),
                        },
                    }));
            return values;
        }
    }

    /// <summary>A log entry's redacted message and values (what structured formatters such as the JSON console write).</summary>
    private sealed class State(string message, List<KeyValuePair<string, object?>> values) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public string Message { get; } = message;
        public int Count => values.Count;
        public KeyValuePair<string, object?> this[int index] => values[index];
        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => values.GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        public override string ToString() => Message;
    }
}
