using Behemoth.Package;
using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>
/// One device profile of a package, loaded into an ONNX Runtime session: feed tokens, get logits, with the KV cache
/// kept between calls. Loading checks the size and SHA-256 of every file the profile uses, so a tampered or truncated
/// package is refused with the file's name before ONNX Runtime reads it.
/// </summary>
/// <remarks>
/// Thread-safe to dispose at any time: <see cref="Dispose"/> terminates the <see cref="Forward"/> calls in flight, waits
/// for them to leave, then frees the native session. A Forward that Dispose ended, and any call after it, throws
/// <see cref="ObjectDisposedException"/> (never a native error); a generation on the session ends with that exception.
/// </remarks>
public sealed class DecoderSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly LoadedGraph _loaded;
    private readonly NativeLifetime _lifetime = new();

    private DecoderSession(string directory, PackageManifest manifest, string profile, LoadedGraph loaded)
    {
        Directory = directory;
        Manifest = manifest;
        Profile = profile;
        _loaded = loaded;
        _session = loaded.Session;
        try
        {
            CheckShape(manifest, loaded.Session, Path.Combine(directory, loaded.Verified.Info.Graph));
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
        // an input with a default is an overridable initializer to ONNX Runtime, listed apart from the inputs
        _logitsToKeep = _session.InputMetadata.ContainsKey(GraphNames.LogitsToKeep) || _session.OverridableInitializerMetadata.ContainsKey(GraphNames.LogitsToKeep);
        _ones = new long[manifest.Model.ContextLength];
        Array.Fill(_ones, 1L);
    }

    // Packages since the generation core take logits_to_keep: lm_head then runs on the last position only
    // (older packages compute every row, and the last is copied out).
    private readonly bool _logitsToKeep;

    /// <summary>Whether the graph computes only the rows asked for (<see cref="GraphNames.LogitsToKeep"/>).</summary>
    internal bool KeepsOnlyLastLogits => _logitsToKeep;
    private readonly long[] _ones;
    private readonly HashSet<SequenceBinding> _bindings = [];
    private static readonly long[] KeepLast = [1], KeepAll = [0];
    private readonly OrtValue KeepLastValue = OrtValue.CreateTensorValueFromMemory(KeepLast, [1]), KeepAllValue = OrtValue.CreateTensorValueFromMemory(KeepAll, [1]);

    /// <summary>
    /// The manifest's dimensions against the graph's own inputs and outputs, before anything is sized by them: a
    /// manifest that claims another layer count, vocabulary or head shape than the graph has is refused here.
    /// </summary>
    private static void CheckShape(PackageManifest manifest, InferenceSession session, string graphPath)
    {
        var shape = manifest.Model;
        string manifestPath = Path.Combine(Path.GetDirectoryName(graphPath)!, PackageManifest.FileName);
        int layers = session.InputMetadata.Keys.Count(k => k.StartsWith("past_key_values.", StringComparison.Ordinal) && k.EndsWith(".key", StringComparison.Ordinal));
        if (layers != shape.NumLayers)
            throw new PackageFormatException(manifestPath, $"num_hidden_layers is {shape.NumLayers}; the graph {Path.GetFileName(graphPath)} has {layers} layers");
        for (int l = 0; l < layers; l++)
            if (!session.InputMetadata.TryGetValue(GraphNames.PastKey(l), out var past) || past.Dimensions is not [_, var heads, _, var dim]
                || heads > 0 && heads != shape.NumKvHeads || dim > 0 && dim != shape.HeadDim)
                throw new PackageFormatException(manifestPath, $"layer {l}: the manifest's {shape.NumKvHeads} key-value heads of {shape.HeadDim} do not match the graph's past key input");
        if (!session.OutputMetadata.TryGetValue(GraphNames.Logits, out var logits) || logits.Dimensions[^1] is int vocab && vocab > 0 && vocab != shape.VocabSize)
            throw new PackageFormatException(manifestPath, $"vocab_size is {shape.VocabSize}; the graph's logits have {session.OutputMetadata.GetValueOrDefault(GraphNames.Logits)?.Dimensions[^1]}");
    }

    /// <summary>The package folder the session was opened from.</summary>
    public string Directory { get; }

    private long _runTicks;

    /// <summary>
    /// Time spent inside ONNX Runtime's runs of this session so far, all callers together: the rest of a generation's
    /// time is the runtime's own overhead (binding, sampling, detokenizing), which <c>behemoth bench</c> reports.
    /// </summary>
    public TimeSpan RunTime => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _runTicks));

    /// <summary>The execution provider the session runs on (after <see cref="ExecutionProvider.Auto"/>'s fallbacks).</summary>
    public ExecutionProvider Provider { get; private init; } = ExecutionProvider.Cpu;
    /// <summary>The package's manifest (stays readable after <see cref="Dispose"/>).</summary>
    public PackageManifest Manifest { get; }

    /// <summary>The device profile loaded.</summary>
    public string Profile { get; }

    /// <summary>The model's dimensions, from the manifest.</summary>
    public ModelShape Shape => Manifest.Model;

    /// <summary>True once <see cref="Dispose"/> has freed the native session (it waits for the runs in flight first).</summary>
    public bool IsDisposed => _lifetime.IsReleased;

    /// <summary>Dispose has begun (runs in flight are being terminated); <see cref="IsDisposed"/> follows once they left.</summary>
    internal bool IsDisposing => _lifetime.IsDisposing;

    /// <summary>Called on the Forward thread just before the native run starts (tests use it to dispose mid-run).</summary>
    internal Action? RunStarting { get; set; }

    /// <summary>Opens <paramref name="profile"/> of the package in <paramref name="packageDirectory"/>.</summary>
    /// <param name="packageDirectory">The package directory (the one holding manifest.json).</param>
    /// <param name="profile">The device profile to load, one of the manifest's profiles.</param>
    /// <param name="options">Session options (execution providers, threads); CPU defaults when null. The profile's
    /// verified weights are added to them as initializers: use them for this one session.</param>
    /// <param name="cancellationToken">Cancels the checksum verification of the profile's files.</param>
    /// <exception cref="PackageFormatException">The package or profile is missing, or a file it uses is truncated or altered.</exception>
    public static DecoderSession Open(string packageDirectory, string profile = "full", SessionOptions? options = null, CancellationToken cancellationToken = default)
    {
        var manifest = PackageReader.ReadManifest(packageDirectory);
        if (options is not null) return new DecoderSession(packageDirectory, manifest, profile, LoadedGraph.Load(packageDirectory, manifest, profile, options, null, cancellationToken));
        using var own = ExecutionProviders.LoadingNative(() => new SessionOptions());
        return new DecoderSession(packageDirectory, manifest, profile, LoadedGraph.Load(packageDirectory, manifest, profile, own, null, cancellationToken));
    }

    /// <summary>Opens <paramref name="profile"/> on <paramref name="provider"/> (see <see cref="ExecutionProviders"/>).</summary>
    public static DecoderSession Open(string packageDirectory, string profile, ExecutionProvider provider, CancellationToken cancellationToken = default)
        => Open(packageDirectory, profile, provider, intraOpThreads: 0, cancellationToken);

    /// <summary>As above, with ONNX Runtime's intra-op thread pool limited to <paramref name="intraOpThreads"/> threads
    /// (0: its default, one per core). Several workers running one session at once each use that many threads.</summary>
    public static DecoderSession Open(string packageDirectory, string profile, ExecutionProvider provider, int intraOpThreads, CancellationToken cancellationToken = default)
        => Open(packageDirectory, profile, provider, intraOpThreads, [], cancellationToken);

    /// <summary>
    /// As above; with <paramref name="trustedKeys"/>, only a package signed by one of them opens (see
    /// <see cref="PackageSigning"/>): unsigned, signed by another key, or any byte changed after signing is refused.
    /// </summary>
    /// <exception cref="PackageTrustException">The package is not signed by a trusted key, or changed after signing.</exception>
    public static DecoderSession Open(string packageDirectory, string profile, ExecutionProvider provider, int intraOpThreads, IReadOnlyList<TrustedKey> trustedKeys,
        CancellationToken cancellationToken = default)
        => Open(packageDirectory, PackageReader.ReadManifest(packageDirectory, trustedKeys), profile, provider, intraOpThreads, verified: null, cancellationToken);

    /// <summary>As above, on a manifest already read (and, with trusted keys, checked); <paramref name="verified"/> is
    /// called once the files are checked, before ONNX Runtime builds the session.</summary>
    internal static DecoderSession Open(string packageDirectory, PackageManifest manifest, string profile, ExecutionProvider provider, int intraOpThreads, Action? verified,
        CancellationToken cancellationToken)
    {
        CheckThreads(intraOpThreads);
        using var options = ExecutionProviders.Create(provider, out var chosen);
        if (intraOpThreads > 0) options.IntraOpNumThreads = intraOpThreads;
        if (chosen == ExecutionProvider.DirectML && manifest.MoeForm != MoeForm.Decomposed)
            throw new ExecutionProviderException($"{packageDirectory}: DirectML has no MoE kernels; export the package with --moe decomposed");
        return new DecoderSession(packageDirectory, manifest, profile, LoadedGraph.Load(packageDirectory, manifest, profile, options, verified, cancellationToken)) { Provider = chosen };
    }

    /// <summary>The most intra-op threads a session takes: 4 × the logical cores (more only compete for them, and a
    /// value such as 100,000 would have ONNX Runtime create that many threads).</summary>
    internal static int MaxIntraOpThreads => 4 * Math.Max(1, Environment.ProcessorCount);

    internal static void CheckThreads(int intraOpThreads)
    {
        if (intraOpThreads < 0 || intraOpThreads > MaxIntraOpThreads)
            throw new ArgumentOutOfRangeException(nameof(intraOpThreads), intraOpThreads,
                $"give 0 (ONNX Runtime's default) or 1 to {MaxIntraOpThreads} (4 × the {Environment.ProcessorCount} logical cores)");
    }

    /// <summary>
    /// Opens the profile with the most weights that fits <paramref name="memoryBudgetBytes"/> together with the KV cache
    /// of one <paramref name="contextTokens"/>-token sequence (see <see cref="ProfileSelection"/>); throws
    /// <see cref="ProfileBudgetException"/>, listing each profile's needs, when none does.
    /// </summary>
    public static DecoderSession OpenWithinBudget(string packageDirectory, long memoryBudgetBytes, int contextTokens, ExecutionProvider provider = ExecutionProvider.Auto,
        CancellationToken cancellationToken = default)
        => OpenWithinBudget(packageDirectory, memoryBudgetBytes, contextTokens, provider, intraOpThreads: 0, cancellationToken);

    /// <summary>As above, with at most <paramref name="intraOpThreads"/> ONNX Runtime threads per run (0: its default).</summary>
    public static DecoderSession OpenWithinBudget(string packageDirectory, long memoryBudgetBytes, int contextTokens, ExecutionProvider provider, int intraOpThreads,
        CancellationToken cancellationToken = default)
        => OpenWithinBudget(packageDirectory, memoryBudgetBytes, contextTokens, provider, intraOpThreads, [], cancellationToken);

    /// <summary>As above, opening only a package signed by one of <paramref name="trustedKeys"/> (when any).</summary>
    public static DecoderSession OpenWithinBudget(string packageDirectory, long memoryBudgetBytes, int contextTokens, ExecutionProvider provider, int intraOpThreads,
        IReadOnlyList<TrustedKey> trustedKeys, CancellationToken cancellationToken = default)
    {
        var manifest = PackageReader.ReadManifest(packageDirectory, trustedKeys);
        string profile = ProfileSelection.Largest(manifest, packageDirectory, memoryBudgetBytes, Math.Min(contextTokens, manifest.Model.ContextLength));
        return Open(packageDirectory, manifest, profile, provider, intraOpThreads, verified: null, cancellationToken);
    }

    /// <summary>An empty KV cache for one sequence (dispose it when the sequence is done).</summary>
    /// <param name="capacity">Positions to preallocate for layers that append in place (it grows past that, doubling);
    /// the generator passes prompt + new tokens. Default: 256.</param>
    /// <exception cref="ObjectDisposedException">The session is disposed.</exception>
    public KvCache NewCache(int capacity = 256)
    {
        _lifetime.ThrowIfDisposed(this);
        return new(Shape, Manifest.KvCache, capacity);
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> (the next tokens of the sequence) and returns their logits, [tokens, vocab]
    /// row-major; the cache grows by the same number of positions.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The session or the cache is disposed, before or during the run (Dispose
    /// terminates the run; the cache is then unusable for this sequence).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="InvalidOperationException">Another Forward is running on the same cache.</exception>
    public float[] Forward(ReadOnlySpan<int> tokens, KvCache cache, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        // the leases keep the native session and the cache's buffers alive until this call has left native code
        using var sessionLease = _lifetime.Enter(this);
        using var cacheLease = cache.Enter();
        using var logits = Run(tokens, cache, lastOnly: false, cancellationToken)!;
        return logits.GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>
    /// As <see cref="Forward"/>, but only the logits after the last of <paramref name="tokens"/> are wanted: they are
    /// written to <paramref name="destination"/> (at least vocabulary-sized), and nothing vocabulary-sized is allocated
    /// here. This is what generation runs.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than the vocabulary.</exception>
    public void ForwardLast(ReadOnlySpan<int> tokens, KvCache cache, Span<float> destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (destination.Length < Shape.VocabSize)
            throw new ArgumentException($"the destination holds {destination.Length} logits; the vocabulary has {Shape.VocabSize}", nameof(destination));
        using var sessionLease = _lifetime.Enter(this);
        using var cacheLease = cache.Enter();
        using var logits = Run(tokens, cache, lastOnly: true, cancellationToken);
        if (logits is null) cache.Binding!.LastLogits.CopyTo(destination);     // the graph wrote the last row into the bound buffer
        else logits.GetTensorDataAsSpan<float>()[^Shape.VocabSize..].CopyTo(destination);
    }

    /// <summary>
    /// One run of the graph, with the leases held by the caller. Returns the logits output (the caller's to dispose),
    /// or null when only the last row was computed, into the sequence binding's buffer.
    /// </summary>
    private OrtValue? Run(ReadOnlySpan<int> tokens, KvCache cache, bool lastOnly, CancellationToken cancellationToken)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to run", nameof(tokens));
        int seq = tokens.Length, past = cache.Length, total = past + seq;
        if (total > Shape.ContextLength)
            throw new InvalidOperationException($"{total} positions exceed the package's context length of {Shape.ContextLength}");
        foreach (int t in tokens)
            if ((uint)t >= (uint)Shape.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} is outside the vocabulary [0, {Shape.VocabSize})");
        cancellationToken.ThrowIfCancellationRequested();

        // IOBinding, one per sequence and kept between runs: the cache binds its own buffers (in place for
        // GroupQueryAttention layers) and takes the presents ONNX Runtime allocates for the others, so no key or value
        // is copied through managed arrays here, and a decode step rebinds only what changed.
        var binding = BindingOf(cache);
        binding.BindTokens(tokens, past);
        // every position is seen: one buffer of ones per session, as long as the context, viewed per step
        binding.BindMask(_ones, total);
        bool lastRowOnly = lastOnly && _logitsToKeep;
        if (_logitsToKeep) binding.BindKeep(lastRowOnly ? KeepLastValue : KeepAllValue);
        binding.BindLogits(lastRowOnly);
        bool appending = false;
        for (int l = 0; l < Shape.NumLayers; l++)
        {
            cache.Bind(binding, l, total);
            appending |= !cache.IsShared(l);
        }

        using var runOptions = new RunOptions();
        using var sessionRun = _lifetime.Track(runOptions);
        using var cacheRun = cache.Track(runOptions);
        using var registration = cancellationToken.CanBeCanceled ? cancellationToken.Register(() => runOptions.Terminate = true) : default;
        try
        {
            RunStarting?.Invoke();
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                _session.RunWithBinding(runOptions, binding.Binding);
            }
            finally
            {
                Interlocked.Add(ref _runTicks, System.Diagnostics.Stopwatch.GetTimestamp() - started);
            }
        }
        catch (OnnxRuntimeException) when (_lifetime.IsDisposing || cache.IsDisposing || cancellationToken.IsCancellationRequested)
        {
            // Terminate makes ONNX Runtime fail the run; report why it was terminated, not ONNX Runtime's message
            ThrowIfDisposing(cache);
            throw new OperationCanceledException(cancellationToken);
        }
        ThrowIfDisposing(cache);
        cancellationToken.ThrowIfCancellationRequested();

        // A step on GroupQueryAttention layers only, into the bound logits buffer, has nothing to take.
        if (lastRowOnly && !appending)
        {
            cache.Length = total;
            return null;
        }
        try
        {
            return TakeOutputs(binding, cache, total, lastRowOnly);
        }
        finally
        {
            binding.AfterRun();
        }
    }

    /// <summary>The presents of the appending layers go to the cache; returns the logits ONNX Runtime allocated, if any.</summary>
    private OrtValue? TakeOutputs(SequenceBinding binding, KvCache cache, int total, bool lastRowOnly)
    {
        var names = binding.OutputNames();
        var outputs = binding.Binding.GetOutputValues();
        var taken = new bool[outputs.Count];
        int Index(string name)
        {
            for (int i = 0; i < names.Count; i++) if (names[i] == name) return i;
            throw new InvalidOperationException($"ONNX Runtime returned no output '{name}'");
        }
        int logitsIndex = Index(GraphNames.Logits);
        if (!lastRowOnly) taken[logitsIndex] = true;      // returned to the caller
        try
        {
            for (int l = 0; l < Shape.NumLayers; l++)
            {
                if (cache.IsShared(l)) continue;        // written in place
                int k = Index(GraphNames.PresentKey(l)), v = Index(GraphNames.PresentValue(l));
                cache.Accept(l, outputs[k], outputs[v], total);
                taken[k] = taken[v] = true;
            }
            cache.Length = total;
            return lastRowOnly ? null : outputs[logitsIndex];
        }
        catch
        {
            if (!lastRowOnly) outputs[logitsIndex].Dispose();
            throw;
        }
        finally
        {
            for (int i = 0; i < outputs.Count; i++)
                if (!taken[i]) outputs[i].Dispose();
        }
    }

    /// <summary>The cache's binding, made on its first run here (or again when another session of the package runs it).</summary>
    private SequenceBinding BindingOf(KvCache cache)
    {
        if (cache.Binding is { } existing && ReferenceEquals(existing.Owner, this)) return existing;
        cache.Binding?.Dispose();
        var binding = new SequenceBinding(this, _session.CreateIoBinding(), Shape.VocabSize, Shape.NumLayers);
        lock (_bindings) _bindings.Add(binding);
        cache.Binding = binding;
        return binding;
    }

    /// <summary>A binding was freed (with its cache): the session no longer frees it.</summary>
    internal void Forget(SequenceBinding binding)
    {
        lock (_bindings) _bindings.Remove(binding);
    }

    private void ThrowIfDisposing(KvCache cache)
    {
        // a run that finished as Dispose began still ends disposed: the caller's session or sequence is gone
        if (_lifetime.IsDisposing) throw new ObjectDisposedException(nameof(DecoderSession), "the session was disposed while Forward ran");
        if (cache.IsDisposing) throw new ObjectDisposedException(nameof(KvCache), "the cache was disposed while Forward ran");
    }

    /// <summary>
    /// Terminates the Forward calls in flight, waits for them to end, then frees the native session. Idempotent and
    /// thread-safe: a second call waits for the first to finish. Do not call it from inside a Forward on this session.
    /// </summary>
    public void Dispose() => _lifetime.Dispose(() =>
    {
        // the caches' bindings first: an IoBinding must not outlive the session it was made from
        SequenceBinding[] bindings;
        lock (_bindings) bindings = [.. _bindings];
        foreach (var binding in bindings) binding.Dispose();
        KeepLastValue.Dispose();
        KeepAllValue.Dispose();
        _loaded.Dispose();
    });
}
