using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Behemoth.Tests;

namespace Behemoth.Packaging.Tests;

/// <summary>
/// The solution packed once into a folder feed, with a version no other build has (so no package cached in the global
/// packages folder can stand in for these), and behemoth-nano exported once with the repository's CLI.
/// </summary>
public sealed class PackedFeed : IDisposable
{
    public const string Prompt = "English: Good morning, how are you?\nItalian:";
    public const int MaxTokens = 8;

    /// <summary>The SDK packages: each must restore from a feed, so everything one references is among them.</summary>
    public static readonly string[] SdkPackages = ["Behemoth.Formats", "Behemoth.Reference", "Behemoth.Package", "Behemoth.Text", "Behemoth.Exporter", "Behemoth.Runtime"];

    private readonly TempDirectory _root = new();

    public PackedFeed()
    {
        Version = "0.1.0-test." + Guid.NewGuid().ToString("N")[..12];
        Configuration = typeof(PackedFeed).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "BuildConfiguration")?.Value ?? "Release";
        Feed = Path.Combine(_root.Path, "feed");
        Package = Path.Combine(_root.Path, "behemoth-nano-int4");

        // The tests' build built the SDK libraries (through the CLI); the tool project is built here (a no-op after a
        // solution build). Then the solution packs as a user packs it, from that build, under the test version.
        Processes.Check(Processes.Dotnet(TestPaths.RepoRoot, "build", "src/Behemoth.Tool", "-c", Configuration, "-v", "q", "-nologo"));
        Processes.Check(Processes.Dotnet(TestPaths.RepoRoot, "pack", "Behemoth.sln", "-c", Configuration, "--no-build", "-v", "q", "-nologo",
            "-p:PackageVersion=" + Version, "-p:PackageOutputPath=" + Feed + Path.DirectorySeparatorChar));

        Processes.Check(Processes.Cli("export", Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano"), "--out", Package, "--quant", "int4"));
        var run = Processes.Check(Processes.Cli("run", Package, "--prompt", Prompt, "--max-tokens", MaxTokens.ToString(),
            "--temperature", "0", "--provider", "cpu", "--json"));
        Expected = JsonNode.Parse(run.Stdout)!["text"]!.GetValue<string>();
    }

    public string Version { get; }
    public string Configuration { get; }
    public string Feed { get; }

    /// <summary>behemoth-nano as an int4 package, exported by the repository's CLI.</summary>
    public string Package { get; }

    /// <summary>What the repository's <c>behemoth run</c> generates for <see cref="Prompt"/> (greedy, CPU).</summary>
    public string Expected { get; }

    public string Nupkg(string id) => Path.Combine(Feed, $"{id}.{Version}.nupkg");

    public string NewDirectory(string name) => Directory.CreateDirectory(Path.Combine(_root.Path, name)).FullName;

    public void Dispose() => _root.Dispose();
}

public sealed class PackagingTests(PackedFeed feed) : IClassFixture<PackedFeed>
{
    private static readonly string[] NativeOnnxRuntime = ["Microsoft.ML.OnnxRuntime", "Microsoft.ML.OnnxRuntime.Gpu", "Microsoft.ML.OnnxRuntime.DirectML"];

    private sealed record Nuspec(XElement Metadata, IReadOnlyList<string> Files)
    {
        public string? Get(string name) => Metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;

        public IEnumerable<string> Dependencies => Metadata.Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => (string)e.Attribute("id")!);
    }

    private static Nuspec Read(string nupkg)
    {
        Assert.True(File.Exists(nupkg), nupkg + " was not produced");
        using var zip = ZipFile.OpenRead(nupkg);
        var entry = Assert.Single(zip.Entries, e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using var stream = entry.Open();
        var metadata = XDocument.Load(stream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        return new Nuspec(metadata, zip.Entries.Select(e => e.FullName).ToList());
    }

    [Fact]
    public void Sdk_packages_carry_their_metadata_docs_and_symbols_and_no_native_onnx_runtime()
    {
        foreach (string id in PackedFeed.SdkPackages)
        {
            var nuspec = Read(feed.Nupkg(id));
            Assert.Equal(id, nuspec.Get("id"));
            Assert.Equal(feed.Version, nuspec.Get("version"));
            Assert.Equal("Behemoth", nuspec.Get("authors"));
            string description = nuspec.Get("description") ?? "";
            Assert.True(description.Length > 40 && description != "Package Description", $"{id}: description '{description}'");
            Assert.Equal("Apache-2.0", nuspec.Get("license"));
            Assert.Equal("README.md", nuspec.Get("readme"));
            Assert.Contains("README.md", nuspec.Files);
            Assert.Contains($"lib/net10.0/{id}.dll", nuspec.Files);
            Assert.Contains($"lib/net10.0/{id}.xml", nuspec.Files);
            Assert.True(File.Exists(Path.ChangeExtension(feed.Nupkg(id), ".snupkg")), id + ": no .snupkg");
            foreach (string dependency in nuspec.Dependencies)
            {
                Assert.DoesNotContain(dependency, NativeOnnxRuntime);
                // every Behemoth dependency is itself in the feed (what failed with NU1101 before)
                if (dependency.StartsWith("Behemoth.", StringComparison.Ordinal)) Assert.Contains(dependency, PackedFeed.SdkPackages);
            }
        }

        var runtime = Read(feed.Nupkg("Behemoth.Runtime")).Dependencies.ToList();
        Assert.Contains("Microsoft.ML.OnnxRuntime.Managed", runtime);
        Assert.Contains("Behemoth.Package", runtime);
        Assert.Contains("Behemoth.Text", runtime);
        Assert.DoesNotContain("Behemoth.Exporter", runtime);
        Assert.DoesNotContain("Behemoth.Reference", runtime);
        Assert.DoesNotContain("Behemoth.Formats", runtime);
        Assert.DoesNotContain(Read(feed.Nupkg("Behemoth.Package")).Dependencies, d => d.StartsWith("Behemoth.", StringComparison.Ordinal));
        // tokenizers are shared by the exporter and the runtime; the exporter never brings in the runtime
        var text = Read(feed.Nupkg("Behemoth.Text")).Dependencies.ToList();
        Assert.Equal(["Behemoth.Package"], text.Where(d => d.StartsWith("Behemoth.", StringComparison.Ordinal)));
        Assert.Contains("Microsoft.ML.Tokenizers", text);
        var exporter = Read(feed.Nupkg("Behemoth.Exporter")).Dependencies.ToList();
        Assert.Contains("Behemoth.Text", exporter);
        Assert.DoesNotContain("Behemoth.Runtime", exporter);

        // only the SDK and the tool pack: no CLI library, bench, sample or test package
        var packed = Directory.GetFiles(feed.Feed, "*.nupkg").Select(f => Path.GetFileName(f)).Order().ToArray();
        Assert.Equal(PackedFeed.SdkPackages.Append("behemoth").Select(id => $"{id}.{feed.Version}.nupkg").Order(), packed);
    }

    [Fact]
    public void A_console_app_on_the_feed_generates_what_the_repository_cli_generates()
    {
        // outside the repository (system temp), so none of its Directory.Build.props / Directory.Packages.props applies
        string app = feed.NewDirectory("app");
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed.Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        // The test packages are restored into the app's own folder, so none lingers in the global packages folder;
        // that folder still serves everything else (ONNX Runtime and friends) without a download.
        File.WriteAllText(Path.Combine(app, "NanoApp.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <RestorePackagesPath>{Path.Combine(app, "packages")}</RestorePackagesPath>
                <RestoreAdditionalProjectFallbackFolders>{GlobalPackagesFolder()}</RestoreAdditionalProjectFallbackFolders>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Behemoth.Runtime" Version="{feed.Version}" />
                <PackageReference Include="Microsoft.ML.OnnxRuntime" Version="1.31.0" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using Behemoth.Runtime;
            using Behemoth.Runtime.Generation;
            using Behemoth.Text;

            string package = args[0];
            using var session = DecoderSession.Open(package, "full", ExecutionProvider.Cpu);
            var tokenizer = ModelTokenizer.Load(package);
            var options = new GenerationOptions { MaxNewTokens = int.Parse(args[2]), Temperature = 0f };
            var text = new System.Text.StringBuilder();
            await foreach (string piece in TextGenerator.GenerateAsync(session, tokenizer, args[1], options))
                text.Append(piece);
            Console.Write(text.ToString());
            """);

        Processes.Check(Processes.Dotnet(app, "build", "-c", "Release", "-v", "q", "-nologo"));
        var assets = File.ReadAllText(Path.Combine(app, "obj", "project.assets.json"));
        Assert.Contains($"Behemoth.Runtime/{feed.Version}", assets);
        Assert.Contains($"Behemoth.Package/{feed.Version}", assets);
        Assert.Contains($"Behemoth.Text/{feed.Version}", assets);
        Assert.DoesNotContain("Behemoth.Exporter", assets);

        var r = Processes.Check(Processes.Dotnet(app, Path.Combine(app, "bin", "Release", "net10.0", "NanoApp.dll"),
            feed.Package, PackedFeed.Prompt, PackedFeed.MaxTokens.ToString()));
        Assert.False(string.IsNullOrWhiteSpace(r.Stdout));
        Assert.Equal(feed.Expected, r.Stdout);
    }

    [Fact]
    public void The_behemoth_tool_installs_from_the_feed_and_generates_the_same_text()
    {
        var nuspec = Read(feed.Nupkg("behemoth"));
        Assert.Equal(feed.Version, nuspec.Get("version"));
        Assert.Equal("Apache-2.0", nuspec.Get("license"));
        Assert.Contains(nuspec.Metadata.Descendants(), e => e.Name.LocalName == "packageType" && (string?)e.Attribute("name") == "DotnetTool");
        Assert.Empty(nuspec.Dependencies);
        // CPU ONNX Runtime only: no CUDA provider (hundreds of MB) and no mobile builds in the tool
        Assert.DoesNotContain(nuspec.Files, f => f.Contains("providers_cuda", StringComparison.Ordinal));
        Assert.DoesNotContain(nuspec.Files, f => f.Contains("/runtimes/android/", StringComparison.Ordinal) || f.Contains("/runtimes/ios/", StringComparison.Ordinal));
        Assert.InRange(new FileInfo(feed.Nupkg("behemoth")).Length, 1, 150L << 20);

        string tools = feed.NewDirectory("tools");
        Processes.Check(Processes.Dotnet(tools, "tool", "install", "--tool-path", tools, "--add-source", feed.Feed, "behemoth", "--version", feed.Version));
        string behemoth = Path.Combine(tools, OperatingSystem.IsWindows() ? "behemoth.exe" : "behemoth");

        // the installed tool is this version of the CLI (the part after '+' is the commit a build saw, which differs
        // when the tree was committed between building the CLI and packing the tool)
        var version = Processes.Check(Processes.Start(tools, behemoth, "--version"));
        static string Release(string v) => v.Trim().Split('+')[0];
        Assert.Equal(Release(Processes.Check(Processes.Cli("--version")).Stdout), Release(version.Stdout));
        var run = Processes.Check(Processes.Start(tools, behemoth, "run", feed.Package, "--prompt", PackedFeed.Prompt,
            "--max-tokens", PackedFeed.MaxTokens.ToString(), "--temperature", "0", "--json"));
        var json = JsonNode.Parse(run.Stdout)!;
        Assert.Equal("cpu", json["provider"]!.GetValue<string>());
        Assert.Equal(feed.Expected, json["text"]!.GetValue<string>());
    }

    [Fact]
    public void The_tool_references_what_the_cli_references_but_for_the_native_onnx_runtime()
    {
        static string[] References(string project)
        {
            var xml = XDocument.Load(Path.Combine(TestPaths.RepoRoot, "src", project, project + ".csproj"));
            return xml.Descendants()
                .Where(e => e.Name.LocalName is "ProjectReference" or "PackageReference")
                .Select(e => (string)e.Attribute("Include")!)
                .Where(r => !NativeOnnxRuntime.Contains(r))
                .Order()
                .ToArray();
        }
        Assert.Equal(References("Behemoth.Cli"), References("Behemoth.Tool"));
    }

    private static string GlobalPackagesFolder() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env
            ? env
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
}

/// <summary>Child processes: dotnet commands and the built CLI, with their output kept for the failure message.</summary>
internal static class Processes
{
    public sealed record Result(string Command, int ExitCode, string Stdout, string Stderr);

    public static Result Dotnet(string workingDirectory, params string[] args) => Start(workingDirectory, "dotnet", args);

    /// <summary>The repository's <c>behemoth</c>, built next to the tests.</summary>
    public static Result Cli(params string[] args) =>
        Start(TestPaths.RepoRoot, "dotnet", [Path.Combine(AppContext.BaseDirectory, "behemoth.dll"), .. args]);

    public static Result Start(string workingDirectory, string fileName, params string[] args)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in args) start.ArgumentList.Add(a);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";     // no build node outlives the test
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', args)}: still running after 5 minutes");
        }
        return new Result($"{fileName} {string.Join(' ', args)}", process.ExitCode, stdout.Result, stderr.Result);
    }

    public static Result Check(Result r)
    {
        Assert.True(r.ExitCode == 0, $"{r.Command} exited {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        return r;
    }
}
