using System.Security.Cryptography;
using System.Text.Json;

namespace Behemoth.Package;

/// <summary>Opens a package directory: parses manifest.json and checks the files a profile uses against it.</summary>
public static class PackageReader
{
    /// <summary>
    /// The serializer options manifest.json is read and written with (indented; property names come from the records'
    /// <c>JsonPropertyName</c> attributes), for tools that write packages. Do not change them: the same instance reads.
    /// </summary>
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>
    /// Parses and validates <paramref name="directory"/>'s manifest.json: its format name and version, that every file a
    /// profile uses is listed, and that no listed file leaves the directory. It reads no other file (see
    /// <see cref="VerifyProfile"/> for the checksums).
    /// </summary>
    /// <exception cref="PackageFormatException">The directory or its manifest is missing, or the manifest is not valid.</exception>
    public static PackageManifest ReadManifest(string directory) => ReadManifest(directory, []);

    /// <summary>
    /// As <see cref="ReadManifest(string)"/>; with <paramref name="trustedKeys"/>, the manifest's bytes must carry a
    /// valid signature by one of them (<see cref="PackageSigning"/>), checked on the very bytes then parsed.
    /// </summary>
    /// <remarks>With trusted keys it also checks every listed file that has no block hashes (graphs, configs, tokenizer
    /// files: the small ones), so a changed byte in any of them is refused even where the profile loaded does not read
    /// it; the blocks of weight files are checked as profiles load them.</remarks>
    /// <exception cref="PackageTrustException">Trusted keys are given and the package is unsigned, signed by none of
    /// them, or its manifest changed after signing.</exception>
    public static PackageManifest ReadManifest(string directory, IReadOnlyList<TrustedKey> trustedKeys)
    {
        ArgumentNullException.ThrowIfNull(trustedKeys);
        string path = System.IO.Path.Combine(directory, PackageManifest.FileName);
        if (!Directory.Exists(directory))
            throw new PackageFormatException(directory, "no such package directory");
        if (!File.Exists(path))
            throw new PackageFormatException(path, "missing: this directory is not a Behemoth package (export one with `behemoth export`)");
        PackageManifest? manifest;
        try
        {
            byte[] bytes = PackageFile.ReadAll(path, MaxManifestBytes);
            if (trustedKeys.Count > 0) PackageSigning.Verify(directory, bytes, trustedKeys);
            manifest = JsonSerializer.Deserialize<PackageManifest>(bytes, Json);
        }
        catch (JsonException e)
        {
            throw new PackageFormatException(path, $"not a valid manifest ({e.Message})");
        }
        if (manifest is null)
            throw new PackageFormatException(path, "empty manifest");
        CheckFields(manifest, path);
        if (manifest.Format != PackageManifest.FormatName)
            throw new PackageFormatException(path, $"format is '{manifest.Format}', expected '{PackageManifest.FormatName}'");
        if (manifest.FormatVersion != PackageManifest.CurrentFormatVersion)
            throw new PackageFormatException(path, $"format_version {manifest.FormatVersion} is not supported (this build reads {PackageManifest.CurrentFormatVersion})");
        foreach (var (name, profile) in manifest.Profiles)
            foreach (var file in profile.Files.Append(profile.Graph))
                if (!manifest.Files.ContainsKey(file))
                    throw new PackageFormatException(path, $"profile '{name}' uses '{file}', which the files list does not describe");
        foreach (var file in manifest.Files.Keys)
            if (file.Contains("..", StringComparison.Ordinal) || System.IO.Path.IsPathRooted(file) || file.Length == 0 || file.IndexOfAny(['/', '\\', '\0']) >= 0)
                throw new PackageFormatException(path, $"file name '{file}' leaves the package directory");
        if (trustedKeys.Count > 0)
            foreach (var (file, entry) in manifest.Files)
                if (entry.BlockSha256 is null) VerifyFile(directory, file, entry);
        return manifest;
    }

    /// <summary>The largest manifest read (a real one is kilobytes; the cap keeps a hostile file from filling memory).</summary>
    public const int MaxManifestBytes = 64 << 20;

    /// <summary>Limits on what a manifest may claim, checked before anything is sized by it.</summary>
    private const int MaxLayers = 4096, MaxHeads = 4096, MaxHeadDim = 8192, MaxVocab = 16 << 20, MaxContext = 16 << 20, MaxHidden = 1 << 20;

    // JSON null where the records require a value, counts and sizes out of any real model's range: one message each
    private static void CheckFields(PackageManifest m, string path)
    {
        void Require(bool ok, string what)
        {
            if (!ok) throw new PackageFormatException(path, what);
        }
        Require(m.Format is not null && m.ModelType is not null && m.Architecture is not null, "\"format\", \"architecture\" and \"model_type\" must be strings");
        Require(m.Model is not null, "no \"model\" object");
        Require(m.Profiles is not null && m.Files is not null, "\"profiles\" and \"files\" must be objects");
        Require(m.Profiles!.Count > 0, "no profiles: a package holds at least the 'full' profile");
        var s = m.Model!;
        void InRange(long value, long max, string name) => Require(value >= 1 && value <= max, $"model.{name} is {value}; expected 1 to {max:N0}");
        InRange(s.VocabSize, MaxVocab, "vocab_size");
        InRange(s.HiddenSize, MaxHidden, "hidden_size");
        InRange(s.NumLayers, MaxLayers, "num_hidden_layers");
        InRange(s.NumHeads, MaxHeads, "num_attention_heads");
        InRange(s.NumKvHeads, MaxHeads, "num_key_value_heads");
        InRange(s.HeadDim, MaxHeadDim, "head_dim");
        InRange(s.ContextLength, MaxContext, "context_length");
        Require(s.EosTokenIds is null || s.EosTokenIds.All(id => id >= 0 && id < s.VocabSize), $"model.eos_token_ids must be ids below vocab_size {s.VocabSize}");
        Require(s.BosTokenId is null || s.BosTokenId >= 0 && s.BosTokenId < s.VocabSize, $"model.bos_token_id must be an id below vocab_size {s.VocabSize}");
        foreach (var (name, f) in m.Files!)
        {
            Require(f is not null && f.Sha256 is { Length: 64 }, $"files['{name}'] needs \"bytes\" and a 64-digit \"sha256\"");
            Require(f!.Bytes >= 0, $"files['{name}'].bytes is {f.Bytes}; expected a size in bytes");
            if (f.BlockBytes is int block)
            {
                Require(block >= 4096, $"files['{name}'].block_bytes is {block}; expected at least 4096");
                long blocks = (f.Bytes + block - 1) / block;
                Require(f.BlockSha256 is not null && f.BlockSha256.Count == blocks && f.BlockSha256.All(h => h is { Length: 64 }),
                    $"files['{name}'] needs {blocks} 64-digit block_sha256 entries for {f.Bytes:N0} bytes in blocks of {block:N0}");
            }
        }
        foreach (var (name, p) in m.Profiles!)
            Require(p is not null && p.Graph is not null && p.Files is not null && p.Files.All(x => x is not null) && p.Experts is not null,
                $"profile '{name}' needs \"graph\", \"files\" and \"experts\"");
        Require(m.KvCache is null || m.KvCache.All(l => l is not null && l.Layer >= 0 && l.Layer < s.NumLayers && (l.Window is null || l.Window > 0)),
            $"kv_cache entries need a layer below num_hidden_layers {s.NumLayers} and a positive window");
        if (m.Tokenizer is { } t) Require(t.Kind is not null && t.Files is not null && t.Files.All(x => x is not null), "tokenizer needs \"kind\" and \"files\"");
    }

    /// <summary>
    /// Checks every file <paramref name="profile"/> uses: the graph's size and SHA-256, and the blocks of the weight
    /// files holding the tensors the graph names (taken from the graph itself, see <see cref="VerifiedProfile"/>);
    /// throws naming the first file that is missing, truncated, altered or unlisted.
    /// </summary>
    public static ProfileInfo VerifyProfile(string directory, PackageManifest manifest, string profile, CancellationToken cancellationToken = default)
    {
        using var verified = VerifiedProfile.Load(directory, manifest, profile, cancellationToken);
        return verified.Info;
    }

    /// <summary>
    /// Checks that <paramref name="file"/> (relative to <paramref name="directory"/>) has the size and whole-file SHA-256
    /// that <paramref name="expected"/> records. Reads the whole file.
    /// </summary>
    /// <exception cref="PackageFormatException">The file is missing, has another size, or its SHA-256 differs.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while hashing.</exception>
    public static void VerifyFile(string directory, string file, FileEntry expected, CancellationToken cancellationToken = default)
    {
        string path = CheckSize(directory, file, expected);
        using var stream = PackageFile.OpenRegular(path, 1 << 20);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[1 << 20];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            sha.AppendData(buffer, 0, read);
        }
        string actual = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (!string.Equals(actual, expected.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new PackageFormatException(path, $"SHA-256 {actual} does not match the manifest's {expected.Sha256} (the file was altered)");
    }

    /// <summary>The file's path, once it is there with the size the manifest records (a truncated file fails here).</summary>
    private static string CheckSize(string directory, string file, FileEntry expected)
    {
        string path = System.IO.Path.Combine(directory, file);
        long length;
        using (var stream = PackageFile.OpenRegular(path)) length = stream.Length;
        if (length != expected.Bytes)
            throw new PackageFormatException(path, $"holds {length:N0} bytes, the manifest records {expected.Bytes:N0} (truncated or replaced)");
        return path;
    }
}
