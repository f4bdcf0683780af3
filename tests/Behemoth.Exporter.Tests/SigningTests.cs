using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Signed packages: with a trusted key, only a package signed by it opens, and a change to any byte of any listed file
/// after signing is refused naming the file (the manifest's signature covers every file's SHA-256).
/// </summary>
public sealed class SigningTests(NanoPackageFixture nano) : IClassFixture<NanoPackageFixture>, IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Copy() => nano.Copy(_temp);

    private (TrustedKey Key, string Private) NewKey()
    {
        var (privateKey, publicKey, id) = PackageSigning.GenerateKeyPair(_temp.File("key-" + Guid.NewGuid().ToString("N")[..6]));
        var key = TrustedKey.Load(publicKey);
        Assert.Equal(id, key.Id);
        return (key, privateKey);
    }

    [Fact]
    public void A_signed_package_opens_under_its_key_and_nothing_else_does()
    {
        string dir = Copy();
        var (key, privateKey) = NewKey();
        var (other, otherPrivate) = NewKey();
        var trust = new ModelOptions { TrustedKeys = [key] };

        var unsigned = Assert.Throws<PackageTrustException>(() => Model.Open(dir, trust));
        Assert.EndsWith(PackageSigning.SignatureFile, unsigned.Path);
        Assert.Contains("not signed", unsigned.Message);

        PackageSigning.Sign(dir, privateKey);
        using (var model = Model.Open(dir, trust)) Assert.Equal("full", model.Session.Profile);
        var wrongKey = Assert.Throws<PackageTrustException>(() => Model.Open(dir, new ModelOptions { TrustedKeys = [other] }));
        Assert.Contains("none of them trusted", wrongKey.Message);

        // rotation: the new key signs too; devices trusting either open it
        PackageSigning.Sign(dir, otherPrivate);
        using (Model.Open(dir, new ModelOptions { TrustedKeys = [other] })) { }
        using (Model.Open(dir, trust)) { }
        using (DecoderSession.Open(dir, "full", ExecutionProvider.Cpu, 1, [other])) { }
    }

    [Fact]
    public void Any_changed_byte_of_any_listed_file_is_refused_naming_the_file()
    {
        string signedDir = Copy();
        var (key, privateKey) = NewKey();
        PackageSigning.Sign(signedDir, privateKey);
        var manifest = PackageReader.ReadManifest(signedDir);
        var random = new Random(5);
        var files = manifest.Files.Keys.Append(PackageManifest.FileName).Order(StringComparer.Ordinal).ToArray();
        foreach (var file in files)
            for (int trial = 0; trial < 2; trial++)
            {
                string dir = _temp.File($"{file}-{trial}");
                Directory.CreateDirectory(dir);
                foreach (var f in Directory.GetFiles(signedDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));     // the signed copy, not the fixture
                string path = Path.Combine(dir, file);
                var bytes = File.ReadAllBytes(path);
                bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                File.WriteAllBytes(path, bytes);
                var e = Assert.ThrowsAny<BehemothException>(() => Model.Open(dir, new ModelOptions { TrustedKeys = [key] }));
                Assert.True(e.Message.StartsWith(path, StringComparison.Ordinal), $"{file}: {e.Message}");
                Directory.Delete(dir, recursive: true);
            }
    }

    [Fact]
    public void Keys_are_never_overwritten_and_bad_key_files_are_refused()
    {
        string prefix = _temp.File("k");
        var (privateKey, publicKey, _) = PackageSigning.GenerateKeyPair(prefix);
        Assert.Throws<PackageTrustException>(() => PackageSigning.GenerateKeyPair(prefix));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(privateKey));
        File.WriteAllText(_temp.File("bad.public"), "not a key");
        var e = Assert.Throws<PackageTrustException>(() => TrustedKey.Load(_temp.File("bad.public")));
        Assert.EndsWith("bad.public", e.Path);
        Assert.Throws<PackageTrustException>(() => PackageSigning.Sign(Copy(), publicKey));    // a public key cannot sign
    }
}
