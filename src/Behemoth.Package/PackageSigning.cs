using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Behemoth.Package;

/// <summary>A package refused because it cannot be trusted: unsigned, signed by no trusted key, or changed after signing.</summary>
public sealed class PackageTrustException(string path, string message) : BehemothException($"{path}: {message}")
{
    /// <summary>The file at fault (the signature file, or the manifest it signs).</summary>
    public string Path { get; } = path;
}

/// <summary>A public key a device trusts packages from (a <c>behemoth keygen</c> <c>.public</c> file).</summary>
public sealed class TrustedKey
{
    private readonly byte[] _subjectPublicKeyInfo;

    private TrustedKey(byte[] subjectPublicKeyInfo, string source)
    {
        _subjectPublicKeyInfo = subjectPublicKeyInfo;
        Source = source;
        Id = PackageSigning.KeyId(subjectPublicKeyInfo);
    }

    /// <summary>The key's id: the first 16 hex digits of the SHA-256 of its SubjectPublicKeyInfo, as signatures name it.</summary>
    public string Id { get; }

    /// <summary>Where the key was read from.</summary>
    public string Source { get; }

    /// <summary>Reads a PEM public key file (ECDSA P-256).</summary>
    /// <exception cref="PackageTrustException">Missing, not a PEM public key, or not an ECDSA P-256 key.</exception>
    public static TrustedKey Load(string path)
    {
        string pem;
        try
        {
            pem = System.Text.Encoding.UTF8.GetString(PackageFile.ReadAll(path, 64 << 10));
        }
        catch (PackageFormatException e)
        {
            throw new PackageTrustException(path, e.Message[(path.Length + 2)..]);
        }
        return FromPem(pem, path);
    }

    /// <summary>A key from PEM text; <paramref name="source"/> names it in errors.</summary>
    public static TrustedKey FromPem(string pem, string source)
    {
        ArgumentNullException.ThrowIfNull(pem);
        using var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportFromPem(pem);
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            throw new PackageTrustException(source, "not a PEM ECDSA public key (expected a behemoth keygen .public file)");
        }
        if (ecdsa.KeySize != 256)
            throw new PackageTrustException(source, $"an ECDSA key of {ecdsa.KeySize} bits; Behemoth signs with P-256");
        return new TrustedKey(ecdsa.ExportSubjectPublicKeyInfo(), source);
    }

    internal bool Verifies(byte[] data, byte[] signature)
    {
        using var ecdsa = ECDsa.Create();
        ecdsa.ImportSubjectPublicKeyInfo(_subjectPublicKeyInfo, out _);
        return ecdsa.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
    }
}

/// <summary>
/// Signed packages: a detached signature (<see cref="SignatureFile"/>) over the exact bytes of manifest.json, which
/// records the size and SHA-256 of every file the runtime reads (graphs, weights, tokenizer and config files). With
/// trusted keys, <see cref="PackageReader.ReadManifest(string, IReadOnlyList{TrustedKey})"/> checks the signature on
/// the bytes it then parses, so a changed manifest, and through its hashes any changed file, is refused.
/// </summary>
/// <remarks>
/// ECDSA P-256 with SHA-256 (<see cref="Algorithm"/>), from System.Security.Cryptography: every platform .NET runs on
/// has it in its own crypto library (CNG, OpenSSL, Apple Security), where Ed25519 has no .NET API. Signatures are
/// DER-encoded, as OpenSSL writes them. Rotating a key: sign with the new key as well (a package holds one signature
/// per key), ship the new public key to devices beside the old, then stop signing with the old and drop it from the
/// devices' trusted keys.
/// </remarks>
public static class PackageSigning
{
    /// <summary>The signature file in a package directory.</summary>
    public const string SignatureFile = "manifest.sig";

    /// <summary>The one algorithm written and accepted.</summary>
    public const string Algorithm = "ECDSA-P256-SHA256";

    private const string Format = "behemoth-signature";

    /// <summary>
    /// Makes a key pair: <paramref name="outPrefix"/><c>.private</c> (PKCS#8 PEM, readable by its owner only) and
    /// <paramref name="outPrefix"/><c>.public</c> (SubjectPublicKeyInfo PEM, for devices). Refuses to overwrite.
    /// </summary>
    /// <returns>The paths written and the key's id.</returns>
    public static (string PrivateKey, string PublicKey, string KeyId) GenerateKeyPair(string outPrefix)
    {
        string privatePath = outPrefix + ".private", publicPath = outPrefix + ".public";
        foreach (var p in new[] { privatePath, publicPath })
            if (File.Exists(p)) throw new PackageTrustException(p, "exists already; a key is never overwritten (choose another --out)");
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        WriteAtomically(privatePath, ecdsa.ExportPkcs8PrivateKeyPem(), ownerOnly: true);
        WriteAtomically(publicPath, ecdsa.ExportSubjectPublicKeyInfoPem(), ownerOnly: false);
        return (privatePath, publicPath, KeyId(ecdsa.ExportSubjectPublicKeyInfo()));
    }

    /// <summary>
    /// Signs <paramref name="packageDirectory"/>'s manifest.json with the private key at <paramref name="privateKeyPath"/>:
    /// the signature by that key is added to <see cref="SignatureFile"/> (or replaces the one it made before).
    /// </summary>
    /// <returns>The key's id.</returns>
    public static string Sign(string packageDirectory, string privateKeyPath)
    {
        PackageReader.ReadManifest(packageDirectory);       // a valid package, before anything is signed
        byte[] bytes = PackageFile.ReadAll(Path.Combine(packageDirectory, PackageManifest.FileName), PackageReader.MaxManifestBytes);
        using var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportFromPem(System.Text.Encoding.UTF8.GetString(PackageFile.ReadAll(privateKeyPath, 64 << 10)));
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            throw new PackageTrustException(privateKeyPath, "not a PEM ECDSA private key (expected a behemoth keygen .private file)");
        }
        if (ecdsa.KeySize != 256) throw new PackageTrustException(privateKeyPath, $"an ECDSA key of {ecdsa.KeySize} bits; Behemoth signs with P-256");
        string id = KeyId(ecdsa.ExportSubjectPublicKeyInfo());
        byte[] signed;
        try
        {
            signed = ecdsa.SignData(bytes, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (CryptographicException)
        {
            throw new PackageTrustException(privateKeyPath, "holds no private key (a .public file cannot sign; use the .private one)");
        }
        var signature = new Signature(Algorithm, id, Convert.ToBase64String(signed));
        string sigPath = Path.Combine(packageDirectory, SignatureFile);
        var others = File.Exists(sigPath) ? ReadSignatures(sigPath).Signatures.Where(s => s.KeyId != id) : [];
        var file = new SignatureFileContent(Format, 1, [.. others, signature]);
        WriteAtomically(sigPath, JsonSerializer.Serialize(file, PackageReader.Json), ownerOnly: false);
        return id;
    }

    /// <summary>
    /// Checks that <paramref name="manifestBytes"/> carry a valid signature by one of <paramref name="trustedKeys"/>;
    /// throws <see cref="PackageTrustException"/> saying which of unsigned, untrusted or altered it is.
    /// </summary>
    public static void Verify(string packageDirectory, byte[] manifestBytes, IReadOnlyList<TrustedKey> trustedKeys)
    {
        string sigPath = Path.Combine(packageDirectory, SignatureFile), manifestPath = Path.Combine(packageDirectory, PackageManifest.FileName);
        if (!File.Exists(sigPath))
            throw new PackageTrustException(sigPath, "missing: the package is not signed, and trusted keys are set (sign it with `behemoth sign`)");
        var signatures = ReadSignatures(sigPath).Signatures;
        var byTrusted = signatures.Where(s => trustedKeys.Any(k => k.Id == s.KeyId)).ToList();
        if (byTrusted.Count == 0)
            throw new PackageTrustException(sigPath, $"signed by key {string.Join(", ", signatures.Select(s => s.KeyId))}, none of them trusted (trusted: {string.Join(", ", trustedKeys.Select(k => k.Id))})");
        foreach (var s in byTrusted)
        {
            if (s.Algorithm != Algorithm) continue;
            byte[] sig;
            try
            {
                sig = Convert.FromBase64String(s.Value);
            }
            catch (FormatException)
            {
                throw new PackageTrustException(sigPath, $"the signature by key {s.KeyId} is not base64");
            }
            if (trustedKeys.Where(k => k.Id == s.KeyId).Any(k => k.Verifies(manifestBytes, sig))) return;
        }
        throw new PackageTrustException(manifestPath, $"does not match its signature by key {string.Join(", ", byTrusted.Select(s => s.KeyId))} (changed after signing)");
    }

    internal static string KeyId(byte[] subjectPublicKeyInfo) => Convert.ToHexStringLower(SHA256.HashData(subjectPublicKeyInfo))[..16];

    private static SignatureFileContent ReadSignatures(string path)
    {
        SignatureFileContent? content;
        try
        {
            content = JsonSerializer.Deserialize<SignatureFileContent>(PackageFile.ReadAll(path, 1 << 20), PackageReader.Json);
        }
        catch (JsonException e)
        {
            throw new PackageTrustException(path, $"not a valid signature file ({e.Message})");
        }
        catch (PackageFormatException e)
        {
            throw new PackageTrustException(path, e.Message[(path.Length + 2)..]);
        }
        if (content is not { Format: Format, Signatures: not null } || content.Signatures.Any(s => s is null || s.KeyId is null || s.Value is null || s.Algorithm is null))
            throw new PackageTrustException(path, $"not a {Format} file with a list of signatures");
        return content;
    }

    private static void WriteAtomically(string path, string text, bool ownerOnly)
    {
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (ownerOnly && !OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var stream = new FileStream(temp, options))
            using (var writer = new StreamWriter(stream))
                writer.Write(text);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private sealed record SignatureFileContent(
        [property: JsonPropertyName("format")] string Format,
        [property: JsonPropertyName("version")] int Version,
        [property: JsonPropertyName("signatures")] IReadOnlyList<Signature> Signatures);

    private sealed record Signature(
        [property: JsonPropertyName("algorithm")] string Algorithm,
        [property: JsonPropertyName("key_id")] string KeyId,
        [property: JsonPropertyName("signature")] string Value);
}
