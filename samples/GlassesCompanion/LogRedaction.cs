using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// Keeps the pairing token out of every log: each logger provider of the app (console, debug, event source, a test's
/// own) is wrapped so that messages and their structured values have the token, <c>token=…</c> query parameters and
/// whole query strings (ASP.NET Core's request log at Information level records <c>?token=…</c>) replaced by
/// <c>[redacted]</c>. The token itself is printed once on stdout, apart from the logs (which go to stderr).
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

    /// <summary>Wraps every <see cref="ILoggerProvider"/> registered so far; call it last, before the app is built.</summary>
    public static void Apply(IServiceCollection services, string? token)
    {
        for (int i = 0; i < services.Count; i++)
        {
            var d = services[i];
            if (d.ServiceType != typeof(ILoggerProvider) || d.IsKeyedService) continue;
            if (d.ImplementationType is { } type)
            {
                // resolved by the container, so it picks the constructor it would have (the console's formatters included)
                services.TryAdd(ServiceDescriptor.Singleton(type, type));
                services[i] = ServiceDescriptor.Singleton<ILoggerProvider>(sp => new Provider((ILoggerProvider)sp.GetRequiredService(type), token, owned: false));
            }
            else if (d.ImplementationFactory is { } factory)
                services[i] = ServiceDescriptor.Singleton<ILoggerProvider>(sp => new Provider((ILoggerProvider)factory(sp), token, owned: true));
            else if (d.ImplementationInstance is ILoggerProvider instance)
                services[i] = ServiceDescriptor.Singleton<ILoggerProvider>(_ => new Provider(instance, token, owned: false));
        }
    }

    private sealed class Provider(ILoggerProvider inner, string? token, bool owned) : ILoggerProvider, ISupportExternalScope
    {
        public ILogger CreateLogger(string categoryName) => new Logger(inner.CreateLogger(categoryName), token);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider)
        {
            if (inner is ISupportExternalScope scoped) scoped.SetScopeProvider(scopeProvider);
        }

        public void Dispose()
        {
            if (owned) inner.Dispose();
        }
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
