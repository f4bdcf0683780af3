using System.CommandLine;
using System.Diagnostics;
using Behemoth.Exporter.Export;
using Behemoth.Package;

namespace Behemoth.Bench;

/// <summary>
/// <c>export-memory CONFIG --work DIR</c>: writes a random-weight checkpoint with the config's real shape, then
/// exports it in a child process while sampling that process's peak resident memory (VmHWM). Baselines from the same
/// run: the checkpoint's size (memory) and the time to read it once sequentially (time).
/// </summary>
internal static class ExportMemoryBench
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "A config.json with the shape to reproduce, e.g. ../shared/configs/OLMoE-1B-7B-0924.transcribed.json" };
        var work = new Option<string>("--work") { Description = "Scratch directory (needs the checkpoint's size plus the package's)", Required = true };
        var quant = new Option<string>("--quant") { Description = "Export precision", DefaultValueFactory = _ => "int4" };
        var keep = new Option<bool>("--keep") { Description = "Keep the checkpoint and package afterwards" };
        var profiles = new Option<string>("--profiles")
        {
            Description = "Also write pruned profiles keeping the first N experts of every MoE layer, e.g. 32,16 (profiles keep32, keep16)",
            DefaultValueFactory = _ => "",
        };
        var command = new Command("export-memory", "Peak memory and time of a streaming export of a full-size random checkpoint") { config, work, quant, keep, profiles };
        command.SetAction(parse =>
        {
            string dir = Path.GetFullPath(parse.GetValue(work)!);
            string checkpoint = Path.Combine(dir, "checkpoint"), package = Path.Combine(dir, "package");
            var clock = Stopwatch.StartNew();
            Console.WriteLine($"writing a random bf16 checkpoint shaped like {parse.GetValue(config)}");
            long ckptBytes = RandomCheckpoint.Write(parse.GetValue(config)!, checkpoint);
            Console.WriteLine($"  {ckptBytes / 1e9:F2} GB in {clock.Elapsed.TotalSeconds:F0} s");

            clock.Restart();
            var buffer = new byte[1 << 22];
            foreach (var f in Directory.GetFiles(checkpoint, "*.safetensors"))
            {
                using var s = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
                while (s.Read(buffer) > 0) { }
            }
            var readTime = clock.Elapsed;
            Console.WriteLine($"baseline: reading the checkpoint once takes {readTime.TotalSeconds:F1} s");

            var child = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardError = false, RedirectStandardOutput = true };
            foreach (var a in ChildPrefix()) child.ArgumentList.Add(a);
            foreach (var a in new[] { "export-child", checkpoint, package, parse.GetValue(quant)!, parse.GetValue(profiles)! }) child.ArgumentList.Add(a);
            clock.Restart();
            using var process = Process.Start(child)!;
            long peak = 0;
            while (!process.WaitForExit(100))
                peak = Math.Max(peak, ReadPeakRss(process.Id));
            var exportTime = clock.Elapsed;
            Console.Write(process.StandardOutput.ReadToEnd());
            if (process.ExitCode != 0) { Console.Error.WriteLine($"export failed with exit code {process.ExitCode}"); return 1; }
            long packageBytes = Directory.GetFiles(package).Sum(f => new FileInfo(f).Length);

            Console.WriteLine($"export ({parse.GetValue(quant)}): {exportTime.TotalSeconds:F0} s = {exportTime / readTime:F1}× the read baseline; "
                + $"peak RSS {peak / 1e9:F2} GB = {100.0 * peak / ckptBytes:F1}% of the checkpoint; package {packageBytes / 1e9:F2} GB "
                + $"= {100.0 * packageBytes / ckptBytes:F1}% of the checkpoint");
            if (!parse.GetValue(keep)) Directory.Delete(dir, recursive: true);
            return 0;
        });
        return command;
    }

    /// <summary>The export itself, run in a child process so that its peak memory is its own.</summary>
    public static Command CreateChild()
    {
        var checkpoint = new Argument<string>("checkpoint");
        var package = new Argument<string>("package");
        var quant = new Argument<string>("quant");
        var keepCounts = new Argument<string>("profiles");
        var command = new Command("export-child", "(internal) the measured export") { checkpoint, package, quant, keepCounts };
        command.Hidden = true;
        command.SetAction(parse =>
        {
            var config = Behemoth.Formats.Architectures.ArchitectureRegistry.ReadDecoder(
                Behemoth.Formats.Architectures.ArchitectureRegistry.LoadConfig(parse.GetValue(checkpoint)!));
            var moeLayers = config.Layers.Where(l => l.FeedForward == Behemoth.Formats.Config.FeedForwardKind.Moe).Select(l => l.Index).ToArray();
            var pruned = parse.GetValue(keepCounts)!.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)
                .Select(n => new ProfileSpec($"keep{n}", $"the first {n} experts of every MoE layer (a shape-accurate pruned variant)",
                    moeLayers.ToDictionary(l => l, _ => Enumerable.Range(0, n).ToArray()))).ToArray();
            var options = new ExportOptions { Quant = Enum.Parse<WeightType>(parse.GetValue(quant)!, ignoreCase: true), Profiles = pruned };
            var result = PackageExporter.Export(parse.GetValue(checkpoint)!, parse.GetValue(package)!, options, overwrite: true,
                new Progress<string>(m => Console.Error.WriteLine("  " + m)));
            Console.WriteLine($"  {result.GraphNodes:N0} nodes, {result.WeightBytes / 1e9:F2} GB of weights");
            return 0;
        });
        return command;
    }

    private static IEnumerable<string> ChildPrefix()
    {
        // `dotnet Behemoth.Bench.dll` when run through the host, nothing when run as an apphost executable
        string entry = typeof(ExportMemoryBench).Assembly.Location;
        return Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? [entry] : [];
    }

    private static long ReadPeakRss(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(6).Trim().ToString().Split(' ')[0]) * 1024;
        }
        catch (IOException) { }
        return 0;
    }
}
