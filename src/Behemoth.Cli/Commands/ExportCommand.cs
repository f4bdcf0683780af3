using System.CommandLine;
using Behemoth.Exporter.Export;
using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth export</c>: a Hugging Face MoE checkpoint → a Behemoth package (ONNX graph + weights + manifest).</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model directory (config.json + safetensors)" };
        var output = new Option<string>("--out") { Description = "Package directory to create", Required = true };
        var quant = new Option<string>("--quant") { Description = "Weight precision of the linear layers (routers and norms stay fp32)", DefaultValueFactory = _ => "fp32" };
        quant.AcceptOnlyFromAmong("fp32", "fp16", "int8", "int4");
        var blockSize = new Option<int>("--block-size") { Description = "Weights per quantization block (int8, int4): a power of two from 16 to 256", DefaultValueFactory = _ => 32 };
        var moe = new Option<string>("--moe")
        {
            Description = "fused: ONNX Runtime's MoE kernel (CPU, CUDA); decomposed: standard ops only (DirectML)",
            DefaultValueFactory = _ => "fused",
        };
        moe.AcceptOnlyFromAmong("fused", "decomposed");
        var maxContext = new Option<int>("--max-context") { Description = "Longest sequence the package supports (caps the RoPE tables)", DefaultValueFactory = _ => 8192 };
        var layers = new Option<int?>("--layers") { Description = "Export only the first N decoder layers (1 to num_hidden_layers), for fast tests" };
        var force = new Option<bool>("--force") { Description = "Replace an existing package at --out" };
        var stats = new Option<string?>("--stats") { Description = "stats.json from behemoth profile (with --devices)" };
        var devices = new Option<string[]>("--devices") { Description = "Device files: one profile per device besides 'full' (with --stats)", AllowMultipleArgumentsPerToken = true };
        var criterion = new Option<string>("--criterion") { Description = "How experts are ranked: reap, frequency, reconstruction, random", DefaultValueFactory = _ => "reap" };
        criterion.AcceptOnlyFromAmong("reap", "frequency", "reconstruction", "random");
        var distil = new Option<string>("--distil")
        {
            Description = "What happens to dropped experts: none; merge (into the most similar kept one: a baseline, it costs quality); "
                + "kd (knowledge distillation of the kept experts and routers from the full model, layer by layer on calibration text; "
                + "writes PACKAGE.kd-DEVICE.png, its loss curves, beside the package)",
            DefaultValueFactory = _ => "none",
        };
        distil.AcceptOnlyFromAmong("none", "merge", "kd");
        var defaults = new Behemoth.Exporter.Pruning.KdOptions();
        var kdSteps = new Option<int>("--kd-steps") { Description = "kd: optimizer steps per pruned MoE layer", DefaultValueFactory = _ => defaults.Steps };
        var kdTokens = new Option<int>("--kd-tokens") { Description = "kd: calibration tokens per device at most, spread over its domains (a tenth of the documents held out)", DefaultValueFactory = _ => defaults.Tokens };
        var kdRate = new Option<double>("--kd-lr") { Description = "kd: peak Adam learning rate", DefaultValueFactory = _ => defaults.LearningRate };
        var kdTarget = new Option<string>("--kd-target")
        {
            Description = "kd: what each pruned layer learns: residual (the full model's hidden state after the layer, so each layer also "
                + "corrects the drift of the layers before it) or layer (the full layer's output on the pruned model's inputs)",
            DefaultValueFactory = _ => defaults.Target.ToString().ToLowerInvariant(),
        };
        kdTarget.AcceptOnlyFromAmong("residual", "layer");
        var seed = new Option<int>("--seed") { Description = "Seed of the random criterion and of kd's sampling", DefaultValueFactory = _ => 1234 };
        var command = new Command("export", "Export a checkpoint to an ONNX package: the 'full' profile, and one per device with --stats and --devices")
        {
            model, output, quant, blockSize, moe, maxContext, layers, force, stats, devices, criterion, distil, kdSteps, kdTokens, kdRate, kdTarget, seed,
        };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            int context = parse.GetValue(maxContext);
            if (context < 1) throw new BehemothException($"--max-context must be positive, found {context}");
            var options = new ExportOptions
            {
                Moe = parse.GetValue(moe) == "decomposed" ? MoeForm.Decomposed : MoeForm.Fused,
                Quant = Enum.Parse<WeightType>(parse.GetValue(quant)!, ignoreCase: true),
                BlockSize = parse.GetValue(blockSize),
                MaxContext = context,
                Layers = parse.GetValue(layers),
            };
            var progress = new SyncProgress(message => Console.Error.WriteLine("  " + message));
            var deviceFiles = parse.GetValue(devices) ?? [];
            string? statsPath = parse.GetValue(stats);
            if ((deviceFiles.Length > 0) != (statsPath is not null))
                throw new BehemothException("--devices and --stats go together: the devices' experts are chosen from the profiling statistics");
            var kdOptions = defaults with { Steps = parse.GetValue(kdSteps), Tokens = parse.GetValue(kdTokens), LearningRate = parse.GetValue(kdRate),
                Target = parse.GetValue(kdTarget) == "layer" ? Behemoth.Exporter.Pruning.KdTarget.Layer : Behemoth.Exporter.Pruning.KdTarget.Residual };
            if (parse.GetValue(distil) == "kd") kdOptions.Validate();
            var kdReports = new List<Behemoth.Exporter.Pruning.KdReport>();
            if (statsPath is not null)
            {
                using var carving = new DeviceCarving(parse.GetValue(model)!, statsPath, kdOptions);
                var c = DeviceCarving.ParseCriterion(parse.GetValue(criterion));
                var d = DeviceCarving.ParseDistillation(parse.GetValue(distil));
                var profiles = new List<ProfileSpec>();
                foreach (var file in deviceFiles)
                {
                    var device = Behemoth.Exporter.Pruning.DeviceSpec.Read(file);
                    if (device.Quant != options.Quant)
                        throw new BehemothException($"{file}: device '{device.Name}' wants {device.Quantization} weights, the package is exported at "
                            + $"{options.QuantName}; export one package per precision (--quant {device.Quantization})");
                    profiles.Add(carving.Carve(device, c, d, options, parse.GetValue(seed), progress, CancellationToken.None));
                }
                options = options with { Profiles = profiles };
                kdReports.AddRange(carving.KdReports);
            }
            var result = PackageExporter.Export(parse.GetValue(model)!, parse.GetValue(output)!, options, parse.GetValue(force), progress);
            foreach (var report in kdReports)
            {
                var (png, _) = KdLossCurve.Write(result.Directory, report);
                progress.Report($"{report.Profile}: kd loss curves in {png}");
            }
            var m = result.Manifest;
            Console.WriteLine($"{m.Architecture} → {result.Directory}");
            Console.WriteLine($"  quantization {m.Quantization.Weights.ToManifestName()}, MoE {m.MoeForm.ToManifestName()}, {result.GraphNodes:N0} graph nodes, {result.WeightBytes / 1e6:F1} MB of weights, {result.Elapsed.TotalSeconds:F1} s");
            foreach (var (name, profile) in m.Profiles)
                Console.WriteLine($"  profile {name}: {profile.Experts.Sum(l => l.ExpertIds.Count)} routed experts, {profile.WeightBytes / 1e6:F2} MB of weights");
            if (result.QuantErrors.Count > 0) PrintQuantErrors(result.QuantErrors);
            return 0;
        }));
        return command;
    }

    /// <summary>The per-tensor error summary: the overall error, the worst tensors, and where the full list is.</summary>
    private static void PrintQuantErrors(IReadOnlyList<TensorQuantError> errors)
    {
        long elements = errors.Sum(e => e.Elements);
        double weighted = Math.Sqrt(errors.Sum(e => e.RelativeError * e.RelativeError * e.Elements) / elements);
        Console.WriteLine($"  quantization error ‖W−Q(W)‖/‖W‖ over {errors.Count} tensors ({elements:N0} weights): "
            + $"overall {weighted:P2}, median {errors.Select(e => e.RelativeError).Order().ElementAt(errors.Count / 2):P2}, worst:");
        foreach (var e in errors.OrderByDescending(e => e.RelativeError).Take(5))
            Console.WriteLine($"    {e.RelativeError,8:P2}  max |Δ| {e.MaxAbsError:E2}  {e.Name}");
        Console.WriteLine($"  every tensor: {PackageExporter.QuantReportFile} in the package");
    }

    private sealed class SyncProgress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
