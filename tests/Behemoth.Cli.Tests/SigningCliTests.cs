using Behemoth.Tests;

namespace Behemoth.Cli.Tests;

/// <summary><c>behemoth keygen</c>, <c>sign</c> and <c>--trust</c> as a publisher and a device use them.</summary>
public sealed class SigningCliTests(NanoPackageFixture nano) : IClassFixture<NanoPackageFixture>, IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void A_device_trusting_a_key_runs_only_what_that_key_signed()
    {
        string package = _temp.File("pkg");
        Directory.CreateDirectory(package);
        foreach (var f in Directory.GetFiles(nano.Package)) File.Copy(f, Path.Combine(package, Path.GetFileName(f)));
        string[] run = ["run", package, "--prompt", "English: Good morning\nItalian:", "--max-tokens", "6"];

        var keygen = BatchCliTests.Run("keygen", "--out", _temp.File("publisher"));
        Assert.Equal(0, keygen.ExitCode);
        Assert.Contains("publisher.public", keygen.Stdout);
        Assert.Equal(1, BatchCliTests.Run("keygen", "--out", _temp.File("publisher")).ExitCode);     // never overwritten
        string trust = _temp.File("publisher.public");

        var unsigned = BatchCliTests.Run([.. run, "--trust", trust]);
        Assert.Equal(1, unsigned.ExitCode);
        Assert.Contains("manifest.sig: missing", unsigned.Stderr);
        Assert.Single(unsigned.Stderr.Trim().Split('\n'));

        Assert.Equal(0, BatchCliTests.Run("sign", package, "--key", _temp.File("publisher.private")).ExitCode);
        var plain = BatchCliTests.Run(run);
        var trusted = BatchCliTests.Run([.. run, "--trust", trust]);
        Assert.Equal(0, trusted.ExitCode);
        Assert.Equal(plain.Stdout, trusted.Stdout);

        Assert.Equal(0, BatchCliTests.Run("keygen", "--out", _temp.File("other")).ExitCode);
        var other = BatchCliTests.Run([.. run, "--trust", _temp.File("other.public")]);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("none of them trusted", other.Stderr);

        // a device file naming the key: --device loads the device's profile under it (the fixture has 'full' only)
        string device = _temp.File("full.json");
        File.WriteAllText(device, """
            {"name": "full", "memory_bytes": 100000000, "context_tokens": 256, "domains": {"en": 1}, "trusted_keys": ["other.public"]}
            """);
        var byDevice = BatchCliTests.Run("run", package, "--prompt", "English: Good morning\nItalian:", "--max-tokens", "6", "--device", device);
        Assert.Equal(1, byDevice.ExitCode);
        Assert.Contains("none of them trusted", byDevice.Stderr);
        File.WriteAllText(device, File.ReadAllText(device).Replace("other.public", "publisher.public"));
        var deviceRun = BatchCliTests.Run("run", package, "--prompt", "English: Good morning\nItalian:", "--max-tokens", "6", "--device", device);
        Assert.Equal(0, deviceRun.ExitCode);
        Assert.Equal(plain.Stdout, deviceRun.Stdout);

        File.AppendAllText(Path.Combine(package, "generation_config.json"), " ");
        var changed = BatchCliTests.Run("bench", package, "--trust", trust, "--prompt-tokens", "8", "--decode-tokens", "4", "--runs", "1");
        Assert.Equal(1, changed.ExitCode);
        Assert.Contains("generation_config.json", changed.Stderr);
    }
}
