using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Behemoth.Package;

/// <summary>
/// A profile's graph and weights as read once from the package and checked, held in memory for the runtime to hand
/// to ONNX Runtime: what the session executes is exactly what was verified, and nothing is read from the package
/// files again (an overwrite after loading changes nothing). Which bytes are needed comes from the graph's own
/// external-data references (<see cref="GraphExternalData"/>), never from the manifest.
/// </summary>
/// <remarks>
/// Each weight file gets one buffer the size of the file, of which only the graph's tensors are written: memory is
/// committed for those pages only (the experts other profiles keep are never touched). Dispose frees the buffers; the
/// session that uses them must be disposed first.
/// </remarks>
public sealed unsafe class VerifiedProfile : IDisposable
{
    private readonly Dictionary<string, nint> _buffers;
    private int _disposed;

    private VerifiedProfile(string name, ProfileInfo info, byte[] graph, IReadOnlyList<ExternalTensor> tensors, Dictionary<string, nint> buffers)
    {
        Name = name;
        Info = info;
        Graph = graph;
        Tensors = tensors;
        _buffers = buffers;
    }

    /// <summary>The profile's name.</summary>
    public string Name { get; }

    /// <summary>The profile's manifest entry.</summary>
    public ProfileInfo Info { get; }

    /// <summary>The graph's bytes (checked against the manifest's SHA-256).</summary>
    public byte[] Graph { get; }

    /// <summary>Every tensor the graph keeps in a weight file.</summary>
    public IReadOnlyList<ExternalTensor> Tensors { get; }

    /// <summary>Bytes of weights read and checked (the graph's tensors).</summary>
    public long WeightBytes => Tensors.Sum(t => t.Length);

    /// <summary>Where <paramref name="tensor"/>'s verified bytes are in memory (valid until Dispose).</summary>
    public nint Address(ExternalTensor tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return _buffers[tensor.Location] + (nint)tensor.Offset;
    }

    /// <summary>
    /// Reads and checks <paramref name="profile"/>: the graph (size and SHA-256), then, for every tensor it keeps in
    /// a weight file, the blocks of that file holding it (each block's SHA-256 from the manifest, or the whole file's
    /// when it has no block hashes), keeping the tensor's bytes from the very read that was hashed.
    /// </summary>
    /// <exception cref="PackageFormatException">A file is missing, altered, truncated or not listed, or the graph
    /// names a weight file or a region the manifest does not cover.</exception>
    public static VerifiedProfile Load(string directory, PackageManifest manifest, string profile, CancellationToken cancellationToken = default)
    {
        string manifestPath = Path.Combine(directory, PackageManifest.FileName);
        if (!manifest.Profiles.TryGetValue(profile, out var info))
            throw new PackageFormatException(manifestPath, $"no profile '{profile}'; the package has {string.Join(", ", manifest.Profiles.Keys.Order())}");
        string graphPath = Path.Combine(directory, info.Graph);
        var graph = PackageFile.ReadAll(graphPath, expected: manifest.Files[info.Graph], cancellationToken: cancellationToken);
        var tensors = GraphExternalData.Read(graph, graphPath);

        var byFile = new Dictionary<string, List<ExternalTensor>>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!manifest.Files.TryGetValue(t.Location, out var entry) || !info.Files.Contains(t.Location, StringComparer.Ordinal))
                throw new PackageFormatException(graphPath, $"tensor '{t.Name}' is stored in '{t.Location}', which the manifest does not list among profile '{profile}''s files");
            if (t.Offset < 0 || t.Length < 0 || t.Offset > entry.Bytes - t.Length)
                throw new PackageFormatException(graphPath, $"tensor '{t.Name}' takes bytes {t.Offset:N0}+{t.Length:N0} of '{t.Location}', which holds {entry.Bytes:N0}");
            if (ElementBytes(t) is long expected && expected != t.Length)
                throw new PackageFormatException(graphPath, $"tensor '{t.Name}' [{string.Join(", ", t.Dims)}] needs {expected:N0} bytes; its external data has {t.Length:N0}");
            (byFile.TryGetValue(t.Location, out var list) ? list : byFile[t.Location] = []).Add(t);
        }

        var buffers = new Dictionary<string, nint>(StringComparer.Ordinal);
        try
        {
            foreach (var (file, list) in byFile)
            {
                var entry = manifest.Files[file];
                string path = Path.Combine(directory, file);
                using var stream = PackageFile.OpenRegular(path, options: FileOptions.RandomAccess);
                // the size the manifest claims is checked against the file before anything is sized by it
                if (stream.Length != entry.Bytes)
                    throw new PackageFormatException(path, $"holds {stream.Length:N0} bytes, the manifest records {entry.Bytes:N0} (truncated or replaced)");
                var buffer = (nint)NativeMemory.Alloc((nuint)Math.Max(1, entry.Bytes));
                buffers[file] = buffer;
                ReadRegions(stream, path, entry, Merge(list), (byte*)buffer, cancellationToken);
            }
            return new VerifiedProfile(profile, info, graph, tensors, buffers);
        }
        catch
        {
            foreach (var b in buffers.Values) NativeMemory.Free((void*)b);
            throw;
        }
    }

    /// <summary>Bytes a tensor of fixed-size elements needs, or null for types this check leaves alone (strings, sub-byte types).</summary>
    private static long? ElementBytes(ExternalTensor t)
    {
        int size = t.DataType switch { 1 or 6 or 12 => 4, 2 or 3 or 9 => 1, 4 or 5 or 10 or 16 => 2, 7 or 11 or 13 => 8, _ => 0 };
        if (size == 0) return null;
        long count = 1;
        foreach (long d in t.Dims)
        {
            if (d < 0) return -1;
            count = checked(count * d);
        }
        return checked(count * size);
    }

    private static List<(long Start, long End)> Merge(List<ExternalTensor> tensors)
    {
        var merged = new List<(long Start, long End)>();
        foreach (var t in tensors.OrderBy(t => t.Offset))
        {
            if (t.Length == 0) continue;
            if (merged.Count > 0 && t.Offset <= merged[^1].End) merged[^1] = (merged[^1].Start, Math.Max(merged[^1].End, t.Offset + t.Length));
            else merged.Add((t.Offset, t.Offset + t.Length));
        }
        return merged;
    }

    private static void ReadRegions(FileStream stream, string path, FileEntry entry, List<(long Start, long End)> regions, byte* buffer, CancellationToken cancellationToken)
    {
        bool blocked = entry is { BlockBytes: > 0, BlockSha256: not null };
        long block = blocked ? entry.BlockBytes!.Value : Math.Max(1, entry.Bytes);
        long blocks = (entry.Bytes + block - 1) / block;
        if (blocked && entry.BlockSha256!.Count != blocks)
            throw new PackageFormatException(path, $"the manifest has {entry.BlockSha256.Count} block hashes for {blocks} blocks of {block:N0} bytes");
        using var whole = blocked ? null : IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var scratch = new byte[Math.Min(block, 1L << 22)];
        int next = 0;      // the first region not yet wholly copied
        for (long b = 0; b < blocks; b++)
        {
            long start = b * block, end = Math.Min(entry.Bytes, start + block);
            while (next < regions.Count && regions[next].End <= start) next++;
            // blocks no region touches are skipped (block-hashed files only: a whole-file hash needs every byte)
            if (blocked && (next == regions.Count || regions[next].Start >= end)) continue;
            cancellationToken.ThrowIfCancellationRequested();
            using var hash = blocked ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
            stream.Position = start;
            for (long at = start; at < end;)
            {
                int n = (int)Math.Min(scratch.Length, end - at);
                stream.ReadExactly(scratch, 0, n);
                (hash ?? whole)!.AppendData(scratch, 0, n);
                // the parts of the regions in this piece go to the buffer, from the bytes just hashed
                for (int r = next; r < regions.Count && regions[r].Start < at + n; r++)
                {
                    long from = Math.Max(at, regions[r].Start), to = Math.Min(at + n, regions[r].End);
                    if (from < to) scratch.AsSpan((int)(from - at), (int)(to - from)).CopyTo(new Span<byte>(buffer + from, (int)(to - from)));
                }
                at += n;
            }
            if (hash is not null)
            {
                string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
                if (!string.Equals(actual, entry.BlockSha256![(int)b], StringComparison.OrdinalIgnoreCase))
                    throw new PackageFormatException(path, $"bytes {start:N0}–{end:N0}: SHA-256 {actual} does not match the manifest's {entry.BlockSha256[(int)b]} (the file was altered)");
            }
        }
        if (whole is not null)
        {
            string actual = Convert.ToHexStringLower(whole.GetHashAndReset());
            if (!string.Equals(actual, entry.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new PackageFormatException(path, $"SHA-256 {actual} does not match the manifest's {entry.Sha256} (the file was altered)");
        }
    }

    /// <summary>Frees the buffers (the session using them must be gone).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        foreach (var b in _buffers.Values) NativeMemory.Free((void*)b);
        _buffers.Clear();
    }
}
