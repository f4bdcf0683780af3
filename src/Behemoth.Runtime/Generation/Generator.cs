namespace Behemoth.Runtime.Generation;

/// <summary>
/// The one generation loop every consumer runs on, one step at a time (in the spirit of onnxruntime-genai's
/// generator): append tokens, generate the next token, ask whether it is done, rewind, read the last logits. It owns
/// the sequence's KV cache; tokens appended are run lazily, on the next call that needs their logits, so a prompt
/// runs as one prefill and the last sampled token is never run when generation ends there.
/// </summary>
/// <remarks>Not thread-safe: one generator is one sequence, driven by one caller at a time.</remarks>
public sealed class Generator : IDisposable
{
    private readonly DecoderSession _session;
    private readonly GenerationOptions _options;
    private readonly Sampler _sampler;
    private readonly HashSet<int> _stop;
    private readonly List<int> _tokens = [];
    private readonly HashSet<int> _seen = [];
    private readonly float[] _logits, _scratch;
    private KvCache? _cache;
    private int _run;            // tokens of _tokens already run through the model (the cache holds them)
    private bool _hasLogits;     // _logits holds the row after the last token run
    private int _newTokens;      // sampled since the last AppendTokens
    private bool _disposed;

    /// <summary>A generator over <paramref name="session"/>; the session stays the caller's and must outlive it.</summary>
    /// <param name="session">The loaded profile to run; not disposed by the generator.</param>
    /// <param name="options">Sampling and stopping (validated here); defaults when null.</param>
    /// <param name="stopTokenIds">Ids that end generation besides <see cref="GenerationOptions.StopTokens"/>; null: the
    /// package's end-of-sequence ids.</param>
    public Generator(DecoderSession session, GenerationOptions? options = null, IEnumerable<int>? stopTokenIds = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        _session = session;
        _options = options ?? new GenerationOptions();
        _options.Validate();
        _sampler = new Sampler(_options);
        _stop = [.. stopTokenIds ?? session.Shape.EosTokenIds, .. _options.StopTokens];
        _logits = new float[session.Shape.VocabSize];
        _scratch = new float[session.Shape.VocabSize];
    }

    /// <summary>
    /// A generator on the same sequence with other options: it takes over this one's tokens and KV cache (this one
    /// is left disposed, the cache not freed), so a conversation's next turn runs only its new tokens.
    /// </summary>
    internal Generator ContinueWith(GenerationOptions options, IEnumerable<int>? stopTokenIds = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var next = new Generator(_session, options, stopTokenIds) { _prefillChunk = _prefillChunk };
        next._tokens.AddRange(_tokens);
        next._seen.UnionWith(_tokens);
        (next._cache, next._run, next._hasLogits) = (_cache, _run, _hasLogits);
        _logits.CopyTo(next._logits, 0);
        (_cache, _disposed) = (null, true);
        return next;
    }

    /// <summary>
    /// Writes the sequence (tokens, last logits, KV cache) with the package profile it belongs to and a checksum, so
    /// that <see cref="RestoreState(DecoderSession, Stream, string, GenerationOptions?, IEnumerable{int}?)"/> can carry
    /// on without running the tokens again (an app killed in the background resumes where it was).
    /// </summary>
    public void SaveState(Stream destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(destination);
        GeneratorState.Write(destination, _session, _tokens, _run, _logits, _hasLogits, _cache);
    }

    /// <summary>As above, to <paramref name="path"/>: written to a temporary file beside it, then renamed into place.</summary>
    public void SaveState(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                SaveState(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>
    /// A generator carrying on a sequence saved by <see cref="SaveState(Stream)"/> on the same profile of the same
    /// package (<paramref name="name"/> names the source in errors).
    /// </summary>
    /// <exception cref="SessionStateException">The state was saved from another package or profile, or is damaged.</exception>
    public static Generator RestoreState(DecoderSession session, Stream source, string name, GenerationOptions? options = null, IEnumerable<int>? stopTokenIds = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(source);
        var generator = new Generator(session, options, stopTokenIds);
        var state = GeneratorState.ReadFrom(source, name, session, Math.Min(session.Shape.ContextLength, 256));
        generator._tokens.AddRange(state.Tokens);
        generator._seen.UnionWith(state.Tokens);
        (generator._run, generator._cache, generator._hasLogits) = (state.Run, state.Cache, state.Logits is not null);
        state.Logits?.CopyTo(generator._logits, 0);
        return generator;
    }

    /// <summary>As above, from the file at <paramref name="path"/>.</summary>
    public static Generator RestoreState(DecoderSession session, string path, GenerationOptions? options = null, IEnumerable<int>? stopTokenIds = null)
    {
        using var stream = PackageFileOpen(path);
        return RestoreState(session, stream, path, options, stopTokenIds);
    }

    private static FileStream PackageFileOpen(string path)
    {
        try
        {
            return Behemoth.Package.PackageFile.OpenRegular(path, 1 << 20);
        }
        catch (Behemoth.Package.PackageFormatException e)
        {
            throw new SessionStateException(path, e.Message[(path.Length + 2)..]);
        }
    }

    /// <summary>The sequence so far: every token appended or generated (stop tokens are not part of it). When the
    /// context fills, the last generated token is one past it: it is returned but can never run.</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Tokens generated since the last <see cref="AppendTokens"/>.</summary>
    public int NewTokens => _newTokens;

    /// <summary>Why generation is done, or <see cref="GenerationStopReason.None"/> while it is not.</summary>
    public GenerationStopReason StopReason { get; private set; }

    /// <summary>True once a stop token came, <see cref="GenerationOptions.MaxNewTokens"/> were generated or the context is full.</summary>
    public bool IsDone => StopReason != GenerationStopReason.None;

    /// <summary>The options it samples and stops with.</summary>
    public GenerationOptions Options => _options;

    /// <summary>
    /// The most tokens one run takes (default 256): a longer prompt runs in pieces of this size through the cache.
    /// Attention's scores grow with the tokens of a run times the sequence, so this bounds the prefill's working memory
    /// (a 4,000-token prompt in one run needs gigabytes of scores); the cost is a few more runs.
    /// </summary>
    public int PrefillChunkTokens
    {
        get => _prefillChunk;
        set => _prefillChunk = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "must be at least 1");
    }

    private int _prefillChunk = 256;

    /// <summary>The KV cache of the sequence (null before the first token runs).</summary>
    public KvCache? Cache => _cache;

    /// <summary>
    /// Adds <paramref name="tokens"/> to the sequence (a prompt, or the next user turn); they run with the next
    /// <see cref="GenerateNextToken"/> or <see cref="GetLastLogits"/>. Resets <see cref="NewTokens"/> and <see cref="IsDone"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No tokens, an id outside the vocabulary, or more tokens than the context has room for.</exception>
    public void AppendTokens(ReadOnlySpan<int> tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to append", nameof(tokens));
        int vocab = _session.Shape.VocabSize, context = _session.Shape.ContextLength;
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} is outside the vocabulary [0, {vocab})");
        if (_tokens.Count + tokens.Length > context)
            throw new ArgumentException($"{_tokens.Count} tokens and {tokens.Length} more exceed the context length of {context}", nameof(tokens));
        foreach (int t in tokens)
        {
            _tokens.Add(t);
            _seen.Add(t);
        }
        _newTokens = 0;
        StopReason = GenerationStopReason.None;
    }

    /// <summary>
    /// Runs what has not run yet, samples the next token from the last logits and appends it (to run on the next
    /// call). A stop token is returned but not appended, and ends generation (<see cref="StopReason"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">Generation is done, or nothing was appended yet.</exception>
    public int GenerateNextToken(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsDone) throw new InvalidOperationException($"generation is done ({StopReason}); append tokens to go on");
        RunPending(cancellationToken);
        int next;
        if (_options.Temperature == 0f && _options.RepetitionPenalty == 1f)
            next = Logits.ArgMax(_logits);              // greedy reads the logits as they are: no copy
        else if (_options.RepetitionPenalty == 1f)
            next = _sampler.Next(_logits, _seen);       // the sampler only reads them
        else
        {
            _logits.CopyTo(_scratch, 0);                // the penalty is applied in place; GetLastLogits stays the model's
            next = _sampler.Next(_scratch, _seen);
        }
        if (_stop.Contains(next))
        {
            StopReason = GenerationStopReason.EndOfSequence;
            return next;
        }
        _tokens.Add(next);
        _seen.Add(next);
        _newTokens++;
        if (_newTokens >= _options.MaxNewTokens) StopReason = GenerationStopReason.MaxTokens;
        // the cache holds every token but this one: when it is full, this token is the last that can come
        else if (_tokens.Count > _session.Shape.ContextLength) StopReason = GenerationStopReason.ContextFull;
        return next;
    }

    /// <summary>The logits after the sequence's last token (vocabulary-sized; valid until the generator moves on).</summary>
    public ReadOnlySpan<float> GetLastLogits(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        RunPending(cancellationToken);
        return _logits;
    }

    /// <summary>
    /// Cuts the sequence back to its first <paramref name="length"/> tokens (e.g. the common prefix with a new turn),
    /// keeping the cache of those tokens where it can and running them again where it cannot.
    /// </summary>
    public void RewindTo(int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _tokens.Count);
        if (length == _tokens.Count) return;
        _tokens.RemoveRange(length, _tokens.Count - length);
        _seen.Clear();
        _seen.UnionWith(_tokens);
        if (length < _run)
        {
            // the cache keeps all but the new last token, which runs again for its logits
            int keep = Math.Max(0, length - 1);
            if (_cache is null || !_cache.TryTruncate(keep))
            {
                _cache?.Dispose();
                _cache = null;
                keep = 0;
            }
            _run = keep;
            _hasLogits = false;
        }
        _newTokens = 0;
        StopReason = GenerationStopReason.None;
    }

    private void RunPending(CancellationToken cancellationToken)
    {
        if (_run == _tokens.Count)
        {
            if (_hasLogits) return;
            throw new InvalidOperationException("no tokens yet: append a prompt first");
        }
        _cache ??= _session.NewCache(Math.Min(_session.Shape.ContextLength, _tokens.Count + _options.MaxNewTokens));
        var all = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens);
        while (_run < all.Length)
        {
            // only the last piece's last logits are kept; the earlier pieces fill the cache
            int take = Math.Min(_prefillChunk, all.Length - _run);
            _session.ForwardLast(all.Slice(_run, take), _cache, _logits, cancellationToken);
            _run += take;
        }
        _hasLogits = true;
    }

    /// <summary>Frees the KV cache; the session is not touched.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _cache?.Dispose();
        _cache = null;
    }
}
