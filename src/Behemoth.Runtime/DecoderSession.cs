using Behemoth.Package;
using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>
/// One device profile of a package, loaded into an ONNX Runtime session: feed tokens, get logits, with the KV cache
/// kept between calls. Loading checks the size and SHA-256 of every file the profile uses, so a tampered or truncated
/// package is refused with the file's name before ONNX Runtime reads it.
/// </summary>
public sealed class DecoderSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string[] _outputNames;

    private DecoderSession(string directory, PackageManifest manifest, string profile, InferenceSession session)
    {
        Directory = directory;
        Manifest = manifest;
        Profile = profile;
        _session = session;
        var m = manifest.Model;
        _outputNames = new[] { "logits" }
            .Concat(Enumerable.Range(0, m.NumLayers).SelectMany(l => new[] { $"present.{l}.key", $"present.{l}.value" })).ToArray();
    }

    public string Directory { get; }

    /// <summary>The execution provider the session runs on (after <see cref="ExecutionProvider.Auto"/>'s fallbacks).</summary>
    public ExecutionProvider Provider { get; private init; } = ExecutionProvider.Cpu;
    public PackageManifest Manifest { get; }
    public string Profile { get; }
    public ModelShape Shape => Manifest.Model;

    /// <summary>Opens <paramref name="profile"/> of the package in <paramref name="packageDirectory"/>.</summary>
    /// <param name="options">Session options (execution providers, threads); CPU defaults when null.</param>
    public static DecoderSession Open(string packageDirectory, string profile = "full", SessionOptions? options = null, CancellationToken cancellationToken = default)
    {
        var manifest = PackageReader.ReadManifest(packageDirectory);
        var info = PackageReader.VerifyProfile(packageDirectory, manifest, profile, cancellationToken);
        string graph = Path.Combine(packageDirectory, info.Graph);
        var session = options is null ? new InferenceSession(graph) : new InferenceSession(graph, options);
        return new DecoderSession(packageDirectory, manifest, profile, session);
    }

    /// <summary>Opens <paramref name="profile"/> on <paramref name="provider"/> (see <see cref="ExecutionProviders"/>).</summary>
    public static DecoderSession Open(string packageDirectory, string profile, ExecutionProvider provider, CancellationToken cancellationToken = default)
    {
        using var options = ExecutionProviders.Create(provider, out var chosen);
        var manifest = PackageReader.ReadManifest(packageDirectory);
        if (chosen == ExecutionProvider.DirectML && manifest.MoeForm != "decomposed")
            throw new ExecutionProviderException($"{packageDirectory}: DirectML has no MoE kernels; export the package with --moe decomposed");
        var info = PackageReader.VerifyProfile(packageDirectory, manifest, profile, cancellationToken);
        var session = new InferenceSession(Path.Combine(packageDirectory, info.Graph), options);
        return new DecoderSession(packageDirectory, manifest, profile, session) { Provider = chosen };
    }

    /// <summary>An empty KV cache for one sequence.</summary>
    public KvCache NewCache() => new(Shape.NumLayers, Shape.NumKvHeads, Shape.HeadDim);

    /// <summary>
    /// Runs <paramref name="tokens"/> (the next tokens of the sequence) and returns their logits, [tokens, vocab]
    /// row-major; the cache grows by the same number of positions.
    /// </summary>
    public float[] Forward(ReadOnlySpan<int> tokens, KvCache cache, CancellationToken cancellationToken = default)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to run", nameof(tokens));
        int seq = tokens.Length, past = cache.Length, total = past + seq;
        if (total > Shape.ContextLength)
            throw new InvalidOperationException($"{total} positions exceed the package's context length of {Shape.ContextLength}");
        foreach (int t in tokens)
            if ((uint)t >= (uint)Shape.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {t} is outside the vocabulary [0, {Shape.VocabSize})");
        cancellationToken.ThrowIfCancellationRequested();

        var ids = new long[seq];
        var positions = new long[seq];
        for (int i = 0; i < seq; i++) (ids[i], positions[i]) = (tokens[i], past + i);
        var mask = new long[total];
        Array.Fill(mask, 1L);

        var names = new List<string> { "input_ids", "attention_mask", "position_ids" };
        var values = new List<OrtValue>
        {
            OrtValue.CreateTensorValueFromMemory(ids, [1, seq]),
            OrtValue.CreateTensorValueFromMemory(mask, [1, total]),
            OrtValue.CreateTensorValueFromMemory(positions, [1, seq]),
        };
        try
        {
            for (int l = 0; l < Shape.NumLayers; l++)
            {
                names.Add($"past_key_values.{l}.key");
                values.Add(cache.Value(l, key: true));
                names.Add($"past_key_values.{l}.value");
                values.Add(cache.Value(l, key: false));
            }
            using var runOptions = new RunOptions();
            using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
            using var outputs = _session.Run(runOptions, names, values, _outputNames);
            cancellationToken.ThrowIfCancellationRequested();
            float[] logits = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            for (int l = 0; l < Shape.NumLayers; l++)
                cache.Update(l, outputs[1 + 2 * l].GetTensorDataAsSpan<float>(), outputs[2 + 2 * l].GetTensorDataAsSpan<float>(), total);
            cache.Length = total;
            return logits;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public void Dispose() => _session.Dispose();
}
