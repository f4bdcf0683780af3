using System.Diagnostics;
using System.Reflection;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// Makes sure the package exists before the model loads. The sample never links the exporter: a missing package is
/// exported by the <c>behemoth</c> command, run as a child process, exactly as a person would run it.
/// </summary>
public static class PackageSetup
{
    /// <summary>The checkout the app runs from (the folder holding Behemoth.sln above the app or the working directory), or null.</summary>
    public static string? FindRepoRoot(params string[] starts)
    {
        foreach (var start in starts)
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Behemoth.sln")))
                    return dir.FullName;
        return null;
    }

    /// <summary>A setting's path: absolute as given, else under the repository root (or the working directory).</summary>
    public static string Resolve(string path, string? repoRoot) =>
        Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(repoRoot ?? Directory.GetCurrentDirectory(), path));

    /// <summary>The command that exports the package, for messages: what the user can run by hand.</summary>
    public static string ManualCommand(GlassesOptions options, string package) =>
        $"dotnet run --project src/Behemoth.Cli -c Release -- export {options.Model} --out {package} --quant {options.Quant} "
        + $"--stats {options.Stats} --devices {options.Devices}/*.json --force";

    /// <summary>Returns the package directory, exporting it first when it is missing and allowed to.</summary>
    public static async Task<string> EnsurePackageAsync(GlassesOptions options, string? repoRoot, ILogger logger, CancellationToken cancellationToken)
    {
        string package = Resolve(options.Package, repoRoot);
        if (File.Exists(Path.Combine(package, "manifest.json"))) return package;
        if (Directory.Exists(package) && Directory.EnumerateFileSystemEntries(package).Any())
            throw new GlassesConfigurationException($"{package} exists but holds no manifest.json, so it is not a Behemoth package; "
                + "point Glasses:Package at a package or remove that directory");
        if (!options.AutoExport)
            throw new GlassesConfigurationException($"no package at {package} (Glasses:AutoExport is off); export one from the repository root with: "
                + ManualCommand(options, package));
        if (repoRoot is null && string.IsNullOrEmpty(options.Cli))
            throw new GlassesConfigurationException($"no package at {package}, and the app is not running inside a Behemoth checkout, so it cannot export one; "
                + "set Glasses:Package to an exported package, or Glasses:Cli to behemoth.dll, or run from the repository: " + ManualCommand(options, package));

        string model = Resolve(options.Model, repoRoot);
        if (!File.Exists(Path.Combine(model, "config.json")))
            throw new GlassesConfigurationException($"no package at {package}, and the model to export, {model}, has no config.json; set Glasses:Model to a checkpoint directory");

        var start = CliStart(options, repoRoot, out string how);
        foreach (var arg in new[] { "export", model, "--out", package, "--quant", options.Quant })
            start.ArgumentList.Add(arg);
        // device profiles (glasses, phone, laptop) carved from the model's expert statistics, when the checkout has them
        string stats = Resolve(options.Stats, repoRoot), devices = Resolve(options.Devices, repoRoot);
        var deviceFiles = Directory.Exists(devices) ? Directory.GetFiles(devices, "*.json").Order().ToArray() : [];
        if (File.Exists(stats) && deviceFiles.Length > 0)
        {
            start.ArgumentList.Add("--stats");
            start.ArgumentList.Add(stats);
            start.ArgumentList.Add("--devices");
            foreach (var f in deviceFiles) start.ArgumentList.Add(f);
        }
        logger.LogWarning("No package at {Package}: exporting {Model} ({Quant}) with {How}. This runs once.", package, model, options.Quant, how);
        var clock = Stopwatch.StartNew();
        var (exitCode, tail) = await RunAsync(start, logger, cancellationToken).ConfigureAwait(false);
        if (exitCode != 0 || !File.Exists(Path.Combine(package, "manifest.json")))
            throw new GlassesConfigurationException($"exporting the package failed (exit code {exitCode}{(tail.Length > 0 ? ": " + tail : "")}); "
                + "export it by hand from the repository root with: " + ManualCommand(options, package));
        logger.LogInformation("Exported {Package} in {Seconds:F1} s", package, clock.Elapsed.TotalSeconds);
        return package;
    }

    /// <summary>How to start the CLI: the configured behemoth.dll, a built one in the repository (this app's build
    /// configuration first), else <c>dotnet run --project src/Behemoth.Cli -c Release --</c> (which builds it).</summary>
    private static ProcessStartInfo CliStart(GlassesOptions options, string? repoRoot, out string how)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (!string.IsNullOrEmpty(options.Cli))
        {
            string dll = Resolve(options.Cli, repoRoot);
            if (!File.Exists(dll)) throw new GlassesConfigurationException($"Glasses:Cli is {dll}, which does not exist; build the CLI (dotnet build src/Behemoth.Cli -c Release) or fix the path");
            start.ArgumentList.Add(dll);
            how = "dotnet " + dll;
            return start;
        }
        string configuration = typeof(PackageSetup).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "BuildConfiguration")?.Value ?? "Release";
        foreach (var c in new[] { configuration, "Release", "Debug" }.Distinct())
        {
            string dll = Path.Combine(repoRoot!, "src", "Behemoth.Cli", "bin", c, "net10.0", "behemoth.dll");
            if (File.Exists(dll))
            {
                start.ArgumentList.Add(dll);
                how = "dotnet " + dll;
                return start;
            }
        }
        foreach (var arg in new[] { "run", "--project", Path.Combine(repoRoot!, "src", "Behemoth.Cli"), "-c", "Release", "--" })
            start.ArgumentList.Add(arg);
        how = "dotnet run --project src/Behemoth.Cli -c Release (building the CLI first)";
        return start;
    }

    private static async Task<(int ExitCode, string Tail)> RunAsync(ProcessStartInfo start, ILogger logger, CancellationToken cancellationToken)
    {
        using var process = new Process { StartInfo = start };
        var lastError = "";
        process.OutputDataReceived += (_, e) => { if (!string.IsNullOrWhiteSpace(e.Data)) logger.LogDebug("behemoth: {Line}", e.Data); };
        process.ErrorDataReceived += (_, e) =>
        {
            if (string.IsNullOrWhiteSpace(e.Data)) return;
            lastError = e.Data.Trim();
            logger.LogInformation("behemoth: {Line}", e.Data);
        };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new GlassesConfigurationException("cannot start `dotnet` to export the package (" + e.Message + "); is the .NET SDK on PATH?", e);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        process.WaitForExit();      // drains the redirected streams
        return (process.ExitCode, lastError);
    }
}
