using Behemoth.Runtime.Generation;

namespace Behemoth.Runtime.Chat;

/// <summary>
/// The KV caches of a chat client's conversations, by <see cref="Microsoft.Extensions.AI.ChatOptions.ConversationId"/>:
/// a turn takes its conversation's generator out, runs only what differs from what the cache holds, and puts it
/// back. Bounded: at most <see cref="MaxConversations"/> conversations and <see cref="MaxBytes"/> bytes of keys and
/// values, the least recently used freed first.
/// </summary>
internal sealed class ConversationCache(int maxConversations, long maxBytes) : IDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, (Generator Generator, long LastUsed)> _entries = new(StringComparer.Ordinal);
    private long _clock;
    private bool _disposed;

    public int MaxConversations { get; } = maxConversations;

    public long MaxBytes { get; } = maxBytes;

    public int Count
    {
        get { lock (_gate) return _entries.Count; }
    }

    /// <summary>The conversation's generator, now the caller's (null when it has none or it was evicted).</summary>
    public Generator? Take(string id)
    {
        lock (_gate)
        {
            if (!_entries.Remove(id, out var entry)) return null;
            return entry.Generator;
        }
    }

    /// <summary>Keeps <paramref name="generator"/> for the conversation, then frees the least recently used beyond the caps.</summary>
    public void Put(string id, Generator generator)
    {
        var evicted = new List<Generator>();
        lock (_gate)
        {
            if (_disposed)
            {
                evicted.Add(generator);
            }
            else
            {
                if (_entries.Remove(id, out var old)) evicted.Add(old.Generator);
                _entries[id] = (generator, ++_clock);
                while (_entries.Count > 0 && (_entries.Count > MaxConversations || _entries.Values.Sum(e => e.Generator.Cache?.Bytes ?? 0) > MaxBytes))
                {
                    var oldest = _entries.MinBy(e => e.Value.LastUsed);
                    _entries.Remove(oldest.Key);
                    evicted.Add(oldest.Value.Generator);
                }
            }
        }
        foreach (var g in evicted) g.Dispose();
    }

    /// <summary>Frees every conversation's cache.</summary>
    public void Dispose()
    {
        List<Generator> all;
        lock (_gate)
        {
            _disposed = true;
            all = [.. _entries.Values.Select(e => e.Generator)];
            _entries.Clear();
        }
        foreach (var g in all) g.Dispose();
    }
}
