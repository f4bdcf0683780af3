using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Formats.Architectures;
using Behemoth.Formats.Description;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth inspect</c>: layers, experts, parameter counts and weight sizes from config.json.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model directory (with config.json) or a config.json file" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var command = new Command("inspect", "Show a model's layers, experts, top-k, total and active parameters and weight bytes per precision")
        {
            model, json,
        };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            var config = ArchitectureRegistry.LoadConfig(parse.GetValue(model)!);
            var description = ArchitectureRegistry.Describe(config);
            Console.WriteLine(parse.GetValue(json) ? ToJson(description, config.File) : ToText(description));
            return 0;
        }));
        return command;
    }

    private const string QuantizationNote =
        "int8/int4: block-wise, one fp16 scale per 32 weights; routers, norms and biases stay fp32";

    public static string ToJson(ModelDescription d, string configPath)
    {
        var bytes = new JsonObject();
        var perExpert = new JsonObject();
        foreach (var p in WeightPrecision.Standard)
        {
            bytes[p.Name] = d.Bytes(p);
            perExpert[p.Name] = d.BytesPerExpert(p);
        }
        var node = new JsonObject
        {
            ["config"] = configPath,
            ["architecture"] = d.Architecture,
            ["model_type"] = d.ModelType,
            ["runnable"] = d.IsRunnable,
            ["layers"] = d.Layers,
            ["moe_layers"] = d.MoeLayers,
            ["experts"] = d.ExpertsPerLayer,
            ["top_k"] = d.TopK,
            ["total_parameters"] = d.TotalParameters,
            ["active_parameters"] = d.ActiveParameters,
            ["parameters_per_expert"] = d.ParametersPerExpert,
            ["bytes"] = bytes,
            ["bytes_per_expert"] = perExpert,
            ["quantization"] = QuantizationNote,
        };
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public static string ToText(ModelDescription d)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        string Row(string label) => $"  {label,-18}";
        w.WriteLine($"{d.Architecture} ({d.ModelType}){(d.IsRunnable ? "" : "  [inspect only: no engine for this architecture]")}");
        w.WriteLine($"{Row("layers")}{d.Layers} ({d.MoeLayers} MoE)");
        w.WriteLine($"{Row("experts")}{d.ExpertsPerLayer} per MoE layer, top-{d.TopK}");
        w.WriteLine($"{Row("total parameters")}{Count(d.TotalParameters)} ({d.TotalParameters:N0})");
        w.WriteLine($"{Row("active parameters")}{Count(d.ActiveParameters)} ({d.ActiveParameters:N0}, {100.0 * d.ActiveParameters / d.TotalParameters:F1}% per token)");
        w.WriteLine($"{Row("per expert")}{Count(d.ParametersPerExpert)} parameters");
        w.WriteLine();
        w.WriteLine($"  {"precision",-10}{"weights",14}{"per expert",14}");
        foreach (var p in WeightPrecision.Standard)
            w.WriteLine($"  {p.Name,-10}{Size(d.Bytes(p)),14}{Size(d.BytesPerExpert(p)),14}");
        w.Write($"  ({QuantizationNote})");
        return w.ToString();
    }

    public static string Count(long n) => n switch
    {
        >= 1_000_000_000 => $"{n / 1e9:F2}B",
        >= 1_000_000 => $"{n / 1e6:F2}M",
        >= 1_000 => $"{n / 1e3:F1}K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F2} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };
}
