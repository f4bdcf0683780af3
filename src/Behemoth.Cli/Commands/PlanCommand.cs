using System.CommandLine;
using Behemoth.Exporter.Export;
using Behemoth.Exporter.Pruning;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth plan</c>: which experts each device keeps under its memory budget, and the bytes of each profile.</summary>
internal static class PlanCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model directory" };
        var stats = new Option<string>("--stats") { Description = "stats.json from behemoth profile", Required = true };
        var devices = new Option<string[]>("--device") { Description = "Device files (models/devices/*.json)", Required = true, AllowMultipleArgumentsPerToken = true };
        var criterion = new Option<string>("--criterion") { Description = "reap, frequency, reconstruction or random", DefaultValueFactory = _ => "reap" };
        var blockSize = new Option<int>("--block-size") { Description = "Quantization block size the sizes assume", DefaultValueFactory = _ => 32 };
        var maxContext = new Option<int>("--max-context") { Description = "Longest sequence the export will support (sizes its RoPE tables)", DefaultValueFactory = _ => 8192 };
        var seed = new Option<int>("--seed") { Description = "Seed of the random criterion", DefaultValueFactory = _ => 1234 };
        var command = new Command("plan", "Choose each device's experts under its memory budget and print the bytes per profile")
        {
            model, stats, devices, criterion, blockSize, maxContext, seed,
        };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            using var carving = new DeviceCarving(parse.GetValue(model)!, parse.GetValue(stats)!);
            var c = DeviceCarving.ParseCriterion(parse.GetValue(criterion));
            int context = parse.GetValue(maxContext);
            if (context < 1) throw new BehemothException($"--max-context must be positive, found {context}");
            var options = new ExportOptions { BlockSize = parse.GetValue(blockSize), MaxContext = context };
            foreach (var file in parse.GetValue(devices)!)
            {
                var device = DeviceSpec.Read(file);
                var plan = carving.Plan(device, c, options, parse.GetValue(seed));
                Console.WriteLine($"{device.Name} ({file}): {device.Quantization}, {device.ContextTokens}-token context, domains "
                    + string.Join(", ", device.Domains.Select(d => $"{d.Key} {d.Value:0.##}")));
                Console.WriteLine($"  weights {plan.WeightBytes / 1e6:F2} MB + KV cache {plan.KvCacheBytes / 1e6:F2} MB = "
                    + $"{(plan.WeightBytes + plan.KvCacheBytes) / 1e6:F2} MB of {plan.BudgetBytes / 1e6:F2} MB; {plan.ExpertsKept} routed experts kept ({c.ToString().ToLowerInvariant()})");
                foreach (var (layer, kept) in plan.Kept.OrderBy(p => p.Key))
                    Console.WriteLine($"    layer {layer,3}: {kept.Length,3} experts  [{string.Join(" ", kept)}]");
            }
            return 0;
        }));
        return command;
    }
}
