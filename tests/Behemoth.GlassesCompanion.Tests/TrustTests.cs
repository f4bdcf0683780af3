using System.Net;
using Behemoth.Package;
using Behemoth.Samples.GlassesCompanion;

namespace Behemoth.GlassesCompanion.Tests;

/// <summary>Glasses:TrustedKeys: the companion starts only on a package signed by a key it trusts.</summary>
[Collection(GlassesCollection.Name)]
public sealed class TrustTests(PackageFixture package)
{
    [Fact]
    public async Task With_a_trusted_key_only_a_package_signed_by_it_starts()
    {
        using var temp = new Behemoth.Tests.TempDirectory();
        string copy = temp.File("pkg");
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.GetFiles(package.Package)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var (privateKey, publicKey, _) = PackageSigning.GenerateKeyPair(temp.File("publisher"));
        string[] settings = ["--Glasses:Package", copy, "--Glasses:AutoExport", "false", "--Glasses:TrustedKeys:0", publicKey];

        var unsigned = await Assert.ThrowsAsync<PackageTrustException>(() => GlassesHost.StartAsync(package, settings));
        Assert.Contains("not signed", unsigned.Message);

        PackageSigning.Sign(copy, privateKey);
        await using (var host = await GlassesHost.StartAsync(package, settings))
            Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/api/info")).StatusCode);

        File.AppendAllText(Path.Combine(copy, "tokenizer.model"), "x");
        var altered = await Assert.ThrowsAnyAsync<BehemothException>(() => GlassesHost.StartAsync(package, settings));
        Assert.Contains("tokenizer.model", altered.Message);
    }
}
