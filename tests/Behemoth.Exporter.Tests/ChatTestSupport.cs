using System.Buffers;
using System.Diagnostics.Metrics;
using Behemoth.Exporter.Export;
using Behemoth.Runtime;
using Behemoth.Tests;
using Microsoft.Extensions.Logging;
using Microsoft.ML.Tokenizers;
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

namespace Behemoth.Exporter.Tests;

/// <summary>The tiny Mixtral golden checkpoint exported once to a package and opened on the CPU, for a test class.</summary>
public sealed class ChatPackageFixture : IDisposable
{
    private readonly TempDirectory _temp = new();

    public ChatPackageFixture()
    {
        PackageDirectory = _temp.File("pkg");
        PackageExporter.Export(TestPaths.Golden("mixtral"), PackageDirectory, new ExportOptions(), overwrite: false);
        Session = DecoderSession.Open(PackageDirectory, "full", ExecutionProvider.Cpu);
    }

    public string PackageDirectory { get; }
    public DecoderSession Session { get; }
    public Tokenizer Tokenizer { get; } = new CharTokenizer();

    public void Dispose()
    {
        Session.Dispose();
        _temp.Dispose();
    }
}

/// <summary>
/// A tokenizer for the golden checkpoints (which ship none, and have 512 tokens): one token per character, the id is
/// the UTF-16 code (characters above U+01FF become '?'), so any id the model picks decodes to one character.
/// </summary>
public sealed class CharTokenizer : Tokenizer
{
    public const int VocabSize = 512;

    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        var chars = text is null ? textSpan : text.AsSpan();
        var tokens = new List<EncodedToken>(chars.Length);
        for (int i = 0; i < chars.Length; i++)
        {
            int id = chars[i] < VocabSize ? chars[i] : '?';
            tokens.Add(new EncodedToken(id, ((char)id).ToString(), new Range(i, i + 1)));
        }
        return new EncodeResults<EncodedToken> { Tokens = tokens, CharsConsumed = chars.Length };
    }

    public override string Decode(IEnumerable<int> ids) => new(ids.Select(id => (char)id).ToArray());

    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed, out int charsWritten)
    {
        idsConsumed = charsWritten = 0;
        foreach (int id in ids)
        {
            if (charsWritten == destination.Length) return OperationStatus.DestinationTooSmall;
            destination[charsWritten++] = (char)id;
            idsConsumed++;
        }
        return OperationStatus.Done;
    }
}

/// <summary>A logger factory whose loggers keep every entry: category, level, event, message and the structured state.</summary>
public sealed class LogCollector : ILoggerFactory
{
    public sealed record Entry(string Category, LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> State);

    private readonly List<Entry> _entries = [];

    public IReadOnlyList<Entry> Entries
    {
        get { lock (_entries) return _entries.ToArray(); }
    }

    public ILogger CreateLogger(string categoryName) => new Collecting(this, categoryName);
    public void AddProvider(ILoggerProvider provider) { }
    public void Dispose() { }

    private sealed class Collecting(LogCollector owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? pairs.ToDictionary(p => p.Key, p => p.Value) : [];
            lock (owner._entries) owner._entries.Add(new Entry(category, logLevel, eventId, formatter(state, exception), values));
        }
    }
}

/// <summary>An <see cref="IMeterFactory"/> of its own, so a test listens only to the meters it made.</summary>
public sealed class TestMeterFactory : IMeterFactory
{
    private readonly List<Meter> _meters = [];

    public IReadOnlyList<Meter> Meters => _meters;

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(new MeterOptions(options.Name) { Version = options.Version, Tags = options.Tags, Scope = this });
        _meters.Add(meter);
        return meter;
    }

    public void Dispose()
    {
        foreach (var m in _meters) m.Dispose();
    }
}
