using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Behemoth.Exporter.Export.Blocks;
using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Architectures;
using Behemoth.Formats.Checkpoints;
using Behemoth.Formats.Config;
using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Exporter.Export;

/// <summary>What an export produced, for the CLI's summary.</summary>
public sealed record ExportResult(string Directory, PackageManifest Manifest, long WeightBytes, int GraphNodes, TimeSpan Elapsed,
    IReadOnlyList<TensorQuantError> QuantErrors);

/// <summary>
/// Checkpoint → package directory with the <c>full</c> profile: <c>full.onnx</c> (graph), <c>weights.bin</c> (external
/// data), <c>genai_config.json</c>, the tokenizer files, and <c>manifest.json</c>. Everything is written into a
/// temporary sibling directory that replaces the destination only once complete, so a failed export leaves nothing
/// half-written.
/// </summary>
public static class PackageExporter
{
    public const string FullProfile = ExpertPlan.FullProfile;
    public const string WeightsFile = "weights.bin";
    public const string QuantReportFile = "quantization_report.json";
    private static readonly string[] TokenizerFiles = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json"];

    public static ExportResult Export(string modelDirectory, string outputDirectory, ExportOptions options, bool overwrite,
        IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.StartNew();
        var config = ArchitectureRegistry.ReadDecoder(ArchitectureRegistry.LoadConfig(modelDirectory));
        config.Rope.EnsureSupported(config.ConfigPath);
        if (config.HiddenAct != "silu")
            throw new ModelConfigException(config.ConfigPath, $"activation '{config.HiddenAct}' is not supported (supported: silu)", "hidden_act");

        if (options.Layers is int keep)
        {
            if (keep < 1 || keep > config.NumLayers)
                throw new BehemothException($"--layers {keep} is out of range: the model has {config.NumLayers} decoder layers (num_hidden_layers); pass 1 to {config.NumLayers}");
            // a model of the first `keep` layers; the device profiles' choices for the layers beyond are dropped
            config = config with { Layers = config.Layers.Take(keep).ToArray() };
            options = options with
            {
                Profiles = options.Profiles.Select(p => p with { Experts = p.Experts.Where(e => e.Key < keep).ToDictionary(e => e.Key, e => e.Value) }).ToArray(),
            };
        }
        if (options.Bits > 0 && (options.BlockSize < 16 || options.BlockSize > 256 || (options.BlockSize & (options.BlockSize - 1)) != 0))
            throw new BehemothException($"block size {options.BlockSize} is not supported: ONNX Runtime's MatMulNBits and QMoE take a power of two from 16 to 256");
        if (options.Bits > 0 && MoeBlock.UsesFusedMoe(config, options) && config.Layers.Any(l => l.FeedForward == FeedForwardKind.Moe)
            && (config.HiddenSize % options.BlockSize != 0 || config.Moe.ExpertIntermediate % options.BlockSize != 0))
            throw new BehemothException($"block size {options.BlockSize} does not divide hidden_size {config.HiddenSize} and the expert intermediate size "
                + $"{config.Moe.ExpertIntermediate}: ONNX Runtime's QMoE needs whole blocks. Pass a smaller --block-size, or --moe decomposed (MatMulNBits pads)");
        string destination = Path.GetFullPath(outputDirectory);
        if (Directory.Exists(destination) && Directory.EnumerateFileSystemEntries(destination).Any())
        {
            if (!overwrite)
                throw new BehemothException($"{destination}: already exists; pass --force to replace it");
            EnsureReplaceable(destination);
        }
        string staging = destination.TrimEnd(Path.DirectorySeparatorChar) + ".partial-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(staging);
        try
        {
            using var checkpoint = Checkpoint.Open(modelDirectory);
            var plan = ExpertPlan.Create(config, options.Profiles, MoeBlock.UsesFusedMoe(config, options));
            var files = new Dictionary<string, FileEntry>(StringComparer.Ordinal);
            var profileInfos = new Dictionary<string, ProfileInfo>(StringComparer.Ordinal);
            var inventory = MoeLayers(config).Select(l => new LayerExperts(l, plan.StorageOrder(l))).ToArray();
            long weightBytes;
            int nodes = 0;
            IReadOnlyList<TensorQuantError> quantErrors;
            using (var weights = new WeightFile(Path.Combine(staging, WeightsFile), WeightsFile, options.WeightHashBlockBytes))
            {
                var source = new WeightSource(checkpoint, weights, new GraphBuilder("behemoth_decoder"), options);
                foreach (var profile in plan.Profiles)
                {
                    // The full graph writes every tensor; a further profile's graph references the bytes already written.
                    var graph = new GraphBuilder("behemoth_decoder");
                    source.Graph = graph;
                    DecoderGraph.Build(graph, config, source, options, plan, profile.Name, new SyncProgress(l =>
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        progress?.Report(profile.Name == FullProfile
                            ? $"layer {l + 1}/{config.NumLayers}: {weights.Length / 1e6:F1} MB of weights written"
                            : $"profile {profile.Name}: layer {l + 1}/{config.NumLayers}");
                    }));
                    string graphFile = profile.Name + ".onnx";
                    var metadata = new Dictionary<string, string> { ["behemoth.architecture"] = config.Architecture, ["behemoth.profile"] = profile.Name };
                    files[graphFile] = WriteFile(staging, graphFile, graph.ToModelBytes(metadata, $"{config.Architecture} decoder exported by Behemoth, profile {profile.Name}"));
                    var kept = MoeLayers(config).Select(l => new LayerExperts(l, plan.Kept(profile.Name, l))).ToArray();
                    profileInfos[profile.Name] = new ProfileInfo(graphFile, profile.Description, kept, [WeightsFile]) { WeightBytes = source.GraphWeightBytes, WeightRegions = source.GraphRegions() };
                    nodes = Math.Max(nodes, graph.NodeCount);
                }
                quantErrors = source.QuantErrors;
                files[WeightsFile] = new FileEntry(weights.Length, weights.Complete())
                {
                    BlockBytes = weights.BlockSize,
                    BlockSha256 = weights.BlockHashes.ToArray(),
                };
                weightBytes = weights.Length;
            }

            // onnxruntime-genai reads one graph per directory: the full profile's.
            files["genai_config.json"] = WriteFile(staging, "genai_config.json", GenAiConfig.Create(config, FullProfile + ".onnx", options));

            if (quantErrors.Count > 0)
                files[QuantReportFile] = WriteFile(staging, QuantReportFile, JsonSerializer.SerializeToUtf8Bytes(
                    quantErrors.OrderByDescending(q => q.RelativeError).Select(q => new
                    {
                        tensor = q.Name, format = q.Format, elements = q.Elements, relative_error = q.RelativeError, max_abs_error = q.MaxAbsError,
                    }), PackageReader.Json));

            var tokenizerFiles = new List<string>();
            // Rank files named *.tiktoken (Qwen's qwen.tiktoken) travel with the fixed names.
            var tiktokenFiles = Directory.EnumerateFiles(modelDirectory, "*.tiktoken").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal);
            foreach (var name in TokenizerFiles.Concat(tiktokenFiles))
            {
                string src = Path.Combine(modelDirectory, name);
                if (!File.Exists(src)) continue;
                files[name] = WriteFile(staging, name, File.ReadAllBytes(src));
                if (name != "generation_config.json") tokenizerFiles.Add(name);
            }

            var manifest = new PackageManifest
            {
                Architecture = config.Architecture,
                ModelType = config.ModelType,
                Source = Path.GetFileName(Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar)),
                Quantization = new QuantizationInfo(options.Quant, options.Bits > 0 ? options.BlockSize : null,
                    options.Quant == WeightType.Fp32 ? ["everything"] : ["routers", "norms", "biases", "rope tables"]),
                MoeForm = MoeBlock.UsesFusedMoe(config, options) ? MoeForm.Fused : MoeForm.Decomposed,
                Model = new ModelShape(config.VocabSize, config.HiddenSize, config.NumLayers, config.NumHeads, config.NumKvHeads, config.HeadDim,
                    Math.Min(config.MaxPositionEmbeddings, options.MaxContext), config.BosTokenId, config.EosTokenIds),
                Tokenizer = tokenizerFiles.Count == 0 ? null
                    : new TokenizerInfo(TokenizerKinds.Detect(modelDirectory, tokenizerFiles), tokenizerFiles),
                KvCache = AttentionBlock.KvCacheLayout(config, options),
                Experts = inventory,
                Profiles = profileInfos,
                Files = files,
            };
            File.WriteAllBytes(Path.Combine(staging, PackageManifest.FileName), JsonSerializer.SerializeToUtf8Bytes(manifest, PackageReader.Json));

            Replace(staging, destination);
            return new ExportResult(destination, manifest, weightBytes, nodes, started.Elapsed, quantErrors);
        }
        catch
        {
            try { Directory.Delete(staging, recursive: true); } catch (IOException) { }
            throw;
        }
    }

    private static IEnumerable<int> MoeLayers(DecoderConfig c) => c.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe).Select(l => l.Index);

    private static FileEntry WriteFile(string directory, string name, byte[] bytes)
    {
        File.WriteAllBytes(Path.Combine(directory, name), bytes);
        return new FileEntry(bytes.Length, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    /// <summary>
    /// Refuses to replace <paramref name="destination"/> unless its manifest.json parses as a Behemoth package: the
    /// folder of a web app with its own manifest.json, say, is never deleted by <c>--force</c>.
    /// </summary>
    private static void EnsureReplaceable(string destination)
    {
        try
        {
            PackageReader.ReadManifest(destination);
        }
        catch (PackageFormatException e)
        {
            throw new BehemothException($"{destination}: not a Behemoth package, so --force does not replace it ({e.Message})", e);
        }
    }

    /// <summary>Moves the finished staging directory into place; an older package there is removed only after.</summary>
    private static void Replace(string staging, string destination)
    {
        string? old = null;
        if (Directory.Exists(destination))
        {
            if (Directory.EnumerateFileSystemEntries(destination).Any()) EnsureReplaceable(destination);   // still a package, after the export
            old = destination + ".old-" + Guid.NewGuid().ToString("N")[..8];
            Directory.Move(destination, old);
        }
        Directory.Move(staging, destination);
        if (old is not null) Directory.Delete(old, recursive: true);
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; posts to the thread pool, too late for cancellation).</summary>
    private sealed class SyncProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
