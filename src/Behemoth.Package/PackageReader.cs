using System.Security.Cryptography;
using System.Text.Json;

namespace Behemoth.Package;

/// <summary>Opens a package directory: parses manifest.json and checks the files a profile uses against it.</summary>
public static class PackageReader
{
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

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
            VerifyFile(directory, file, manifest.Files[file], cancellationToken);
        return info;
    }

    public static void VerifyFile(string directory, string file, FileEntry expected, CancellationToken cancellationToken = default)
    {
        string path = System.IO.Path.Combine(directory, file);
        if (!File.Exists(path))
            throw new PackageFormatException(path, "missing");
        long length = new FileInfo(path).Length;
        if (length != expected.Bytes)
            throw new PackageFormatException(path, $"holds {length:N0} bytes, the manifest records {expected.Bytes:N0} (truncated or replaced)");
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
}
