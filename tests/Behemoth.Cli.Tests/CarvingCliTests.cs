using System.Text.Json.Nodes;
using Behemoth.Tests;

namespace Behemoth.Cli.Tests;

/// <summary>profile → plan → export --devices as a user runs them on behemoth-nano, and the bad input each refuses.</summary>
public sealed class CarvingCliTests
{
    private static string Nano => Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano");
    private static string Calib(string name) => Path.Combine(Nano, "calib", name);
    private static string Devices => Path.Combine(TestPaths.RepoRoot, "models", "devices");

    [Fact]
    public void Profile_plan_and_export_carve_one_package_with_a_profile_per_device()
    {
        using var dir = new TempDirectory();
        string stats = dir.File("stats.json");
        var r = BatchCliTests.Run("profile", Nano, "--calib", Calib("en.jsonl"), Calib("en-it.jsonl"), "--out", stats, "--plot", dir.File("heat.png"), "--max-tokens", "512");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(File.ReadAllText(stats))!;
        Assert.Equal(["en", "en-it"], json["domains"]!.AsObject().Select(p => p.Key).Order());
        Assert.Equal(512, json["domains"]!["en"]!["tokens"]!.GetValue<long>());
        Assert.True(new FileInfo(dir.File("heat.png")).Length > 10_000);

        // a second run adds a domain to the same file
        r = BatchCliTests.Run("profile", Nano, "--calib", Calib("it.jsonl"), "--out", stats, "--max-tokens", "512");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(3, JsonNode.Parse(File.ReadAllText(stats))!["domains"]!.AsObject().Count);

        string glasses = dir.File("glasses.json");
        File.WriteAllText(glasses, """{"name": "glasses", "memory_bytes": 8000000, "context_tokens": 256, "quantization": "int4", "domains": {"en-it": 0.8, "en": 0.1, "it": 0.1}}""");
        r = BatchCliTests.Run("plan", Nano, "--stats", stats, "--device", glasses);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("glasses", r.Stdout);
        Assert.Contains("layer   0:", r.Stdout);

        r = BatchCliTests.Run("export", Nano, "--out", dir.File("pkg"), "--quant", "int4", "--stats", stats, "--devices", glasses, "--distil", "merge");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var manifest = JsonNode.Parse(File.ReadAllText(dir.File("pkg/manifest.json")))!;
        long glassesBytes = manifest["profiles"]!["glasses"]!["weight_bytes"]!.GetValue<long>();
        Assert.True(glassesBytes < manifest["profiles"]!["full"]!["weight_bytes"]!.GetValue<long>());
        Assert.True(glassesBytes < 8_000_000);
        r = BatchCliTests.Run("run", dir.File("pkg"), "--profile", "glasses", "--prompt", "English: Good morning\nItalian:", "--max-tokens", "8");
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    [Fact]
    public void Calibration_text_that_is_not_utf8_or_is_empty_is_refused_naming_the_file()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("latin1.txt"), [0x43, 0x61, 0x66, 0xE9, 0x20, 0x61, 0x75, 0x20, 0x6C, 0x61, 0x69, 0x74, 0x0A]);   // "Café au lait" in Latin-1
        var r = BatchCliTests.Run("profile", Nano, "--calib", dir.File("latin1.txt"), "--out", dir.File("stats.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("latin1.txt", r.Stderr);
        Assert.Contains("not valid UTF-8", r.Stderr);

        File.WriteAllText(dir.File("empty.jsonl"), "\n\n");
        r = BatchCliTests.Run("profile", Nano, "--calib", dir.File("empty.jsonl"), "--out", dir.File("stats.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("empty.jsonl: holds no text", r.Stderr);
        Assert.False(File.Exists(dir.File("stats.json")));
    }

    [Fact]
    public void Stats_of_another_model_and_impossible_budgets_are_refused()
    {
        using var dir = new TempDirectory();
        string stats = Path.Combine(Nano, "expert-stats.json");
        var r = BatchCliTests.Run("plan", TestPaths.Golden("llama4"), "--stats", stats, "--device", Path.Combine(Devices, "phone.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("another model", r.Stderr);

        string tiny = dir.File("tiny.json");
        File.WriteAllText(tiny, """{"name": "tiny", "memory_bytes": 1000000, "context_tokens": 256, "quantization": "int4", "domains": {"en": 1}}""");
        r = BatchCliTests.Run("plan", Nano, "--stats", stats, "--device", tiny);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("below the smallest possible model", r.Stderr);

        r = BatchCliTests.Run("export", Nano, "--out", dir.File("pkg"), "--quant", "fp32", "--stats", stats, "--devices", Path.Combine(Devices, "glasses.json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("wants int4 weights", r.Stderr);
        Assert.False(Directory.Exists(dir.File("pkg")));
    }

    [Fact]
    public void Export_with_kd_writes_the_loss_curves_beside_the_package_and_refuses_too_little_text()
    {
        using var dir = new TempDirectory();
        string stats = Path.Combine(Nano, "expert-stats.json");
        string glasses = dir.File("glasses.json");
        File.WriteAllText(glasses, """{"name": "glasses", "memory_bytes": 8000000, "context_tokens": 256, "quantization": "int4", "domains": {"en-it": 0.8, "en": 0.1, "it": 0.1}}""");
        var r = BatchCliTests.Run("export", Nano, "--out", dir.File("pkg"), "--quant", "int4", "--stats", stats, "--devices", glasses,
            Path.Combine(Devices, "laptop.json"), "--distil", "kd", "--kd-steps", "6", "--kd-tokens", "2048");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("laptop: keeps every expert, nothing to distil; the profile is exported unchanged", r.Stderr);
        Assert.Contains("glasses: kd layer 3", r.Stderr);
        Assert.True(new FileInfo(dir.File("pkg.kd-glasses.png")).Length > 10_000);
        var curve = JsonNode.Parse(File.ReadAllText(dir.File("pkg.kd-glasses.json")))!;
        Assert.Equal(7, curve["layers"]![0]!["held_out"]!.AsArray().Count);
        Assert.False(File.Exists(dir.File("pkg.kd-laptop.png")));
        var manifest = JsonNode.Parse(File.ReadAllText(dir.File("pkg/manifest.json")))!;
        Assert.Equal(manifest["profiles"]!["full"]!["weight_bytes"]!.GetValue<long>(), manifest["profiles"]!["laptop"]!["weight_bytes"]!.GetValue<long>());
        r = BatchCliTests.Run("run", dir.File("pkg"), "--profile", "glasses", "--prompt", "English: Good morning\nItalian:", "--max-tokens", "4");
        Assert.True(r.ExitCode == 0, r.Stderr);

        r = BatchCliTests.Run("export", Nano, "--out", dir.File("pkg2"), "--quant", "int4", "--stats", stats, "--devices", glasses, "--distil", "kd",
            "--kd-steps", "100000", "--kd-tokens", "2048");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("too little calibration text for 100000 steps", r.Stderr);
        Assert.Single(r.Stderr.Split('\n'), l => l.Contains("too little"));
        Assert.False(Directory.Exists(dir.File("pkg2")));

        string other = dir.File("watch.json");
        File.WriteAllText(other, """{"name": "watch", "memory_bytes": 8000000, "context_tokens": 256, "quantization": "int4", "domains": {"ja": 1}}""");
        r = BatchCliTests.Run("export", Nano, "--out", dir.File("pkg3"), "--quant", "int4", "--stats", stats, "--devices", other, "--distil", "kd");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("domain 'ja' is not in the stats", r.Stderr);
    }
}
