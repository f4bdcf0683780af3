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
    public static PackageManifest ReadManifest(string directory)
    {
        string path = System.IO.Path.Combine(directory, PackageManifest.FileName);
        if (!Directory.Exists(directory))
            throw new PackageFormatException(directory, "no such package directory");
        if (!File.Exists(path))
            throw new PackageFormatException(path, "missing: this directory is not a Behemoth package (export one with `behemoth export`)");
        PackageManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<PackageManifest>(File.ReadAllBytes(path), Json);
        }
        catch (JsonException e)
        {
            throw new PackageFormatException(path, $"not a valid manifest ({e.Message})");
        }
        if (manifest is null)
            throw new PackageFormatException(path, "empty manifest");
        if (manifest.Format != PackageManifest.FormatName)
            throw new PackageFormatException(path, $"format is '{manifest.Format}', expected '{PackageManifest.FormatName}'");
        if (manifest.FormatVersion != PackageManifest.CurrentFormatVersion)
            throw new PackageFormatException(path, $"format_version {manifest.FormatVersion} is not supported (this build reads {PackageManifest.CurrentFormatVersion})");
        foreach (var (name, profile) in manifest.Profiles)
            foreach (var file in profile.Files.Append(profile.Graph))
                if (!manifest.Files.ContainsKey(file))
                    throw new PackageFormatException(path, $"profile '{name}' uses '{file}', which the files list does not describe");
        foreach (var file in manifest.Files.Keys)
            if (file.Contains("..", StringComparison.Ordinal) || System.IO.Path.IsPathRooted(file))
                throw new PackageFormatException(path, $"file name '{file}' leaves the package directory");
        return manifest;
    }

    /// <summary>
    /// Checks the size and SHA-256 of every file <paramref name="profile"/> uses; throws naming the first file that
    /// is missing, truncated or altered.
    /// </summary>
    public static ProfileInfo VerifyProfile(string directory, PackageManifest manifest, string profile, CancellationToken cancellationToken = default)
    {
        if (!manifest.Profiles.TryGetValue(profile, out var info))
            throw new PackageFormatException(System.IO.Path.Combine(directory, PackageManifest.FileName),
                $"no profile '{profile}'; the package has {string.Join(", ", manifest.Profiles.Keys.Order())}");
        foreach (var file in info.Files.Prepend(info.Graph).Distinct())
        {
            var entry = manifest.Files[file];
            if (file != info.Graph && info.WeightRegions is { } regions && entry is { BlockBytes: int block, BlockSha256: { } hashes })
                VerifyBlocks(directory, file, entry, block, hashes, regions, cancellationToken);
            else
                VerifyFile(directory, file, entry, cancellationToken);
        }
        return info;
    }

    /// <summary>
    /// Checks the size of a weight file and the SHA-256 of the blocks that hold <paramref name="regions"/>: a profile
    /// reads and verifies only its own tensors' bytes, not the experts other profiles keep.
    /// </summary>
    public static void VerifyBlocks(string directory, string file, FileEntry expected, int blockBytes, IReadOnlyList<string> hashes,
        IReadOnlyList<long[]> regions, CancellationToken cancellationToken = default)
    {
        string path = CheckSize(directory, file, expected);
        long length = expected.Bytes;
        long blocks = (length + blockBytes - 1) / blockBytes;
        if (hashes.Count != blocks)
            throw new PackageFormatException(path, $"the manifest has {hashes.Count} block hashes for {blocks} blocks of {blockBytes:N0} bytes");
        var needed = new SortedSet<long>();
        foreach (var r in regions)
        {
            if (r.Length != 2 || r[0] < 0 || r[1] < 0 || r[0] + r[1] > length)
                throw new PackageFormatException(path, $"a profile region [{string.Join(", ", r)}] lies outside the file's {length:N0} bytes");
            for (long b = r[0] / blockBytes; b * blockBytes < r[0] + r[1]; b++) needed.Add(b);
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        byte[] buffer = new byte[blockBytes];
        foreach (long b in needed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            stream.Position = b * blockBytes;
            int size = (int)Math.Min(blockBytes, length - b * blockBytes);
            stream.ReadExactly(buffer, 0, size);
            string actual = Convert.ToHexStringLower(SHA256.HashData(buffer.AsSpan(0, size)));
            if (!string.Equals(actual, hashes[(int)b], StringComparison.OrdinalIgnoreCase))
                throw new PackageFormatException(path, $"bytes {b * blockBytes:N0}–{b * blockBytes + size:N0}: SHA-256 {actual} does not match the manifest's {hashes[(int)b]} (the file was altered)");
        }
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
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
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
        if (!File.Exists(path))
            throw new PackageFormatException(path, "missing");
        long length = new FileInfo(path).Length;
        if (length != expected.Bytes)
            throw new PackageFormatException(path, $"holds {length:N0} bytes, the manifest records {expected.Bytes:N0} (truncated or replaced)");
        return path;
    }
}
