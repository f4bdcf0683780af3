using System.Security.Cryptography;

namespace Behemoth.Exporter.Onnx;

/// <summary>Where an initializer's bytes are: a file of the package, a byte offset and a length.</summary>
public readonly record struct WeightRegion(string File, long Offset, long Length);

/// <summary>
/// An append-only external-data file. Tensors are written one at a time as the export streams through the
/// checkpoint, so memory holds one tensor, never the model. Large tensors start on a 4 KiB boundary so that
/// ONNX Runtime can memory-map them. The SHA-256 of the whole file, and of every <see cref="BlockSize"/> block, is
/// computed while writing: a runtime loading one profile verifies only the blocks that profile's tensors are in.
/// </summary>
public sealed class WeightFile : IDisposable
{
    private const int PageAlignment = 4096;
    private const int SmallAlignment = 64;
    private readonly FileStream _stream;
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly IncrementalHash _blockSha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly List<string> _blocks = [];
    private long _blockFill;
    private static readonly byte[] Zeros = new byte[PageAlignment];

    /// <summary>Bytes per block of <see cref="BlockHashes"/> unless the writer asks for another size.</summary>
    public const int DefaultBlockSize = 4 << 20;

    /// <summary>Bytes per block of <see cref="BlockHashes"/>.</summary>
    public int BlockSize { get; }

    /// <summary>SHA-256 of each <see cref="BlockSize"/> block (the last one may be shorter), after <see cref="Complete"/>.</summary>
    public IReadOnlyList<string> BlockHashes => _blocks;

    /// <param name="path">The file to write (a temporary name; the package writer renames it).</param>
    /// <param name="name">The file's name inside the package, as the graphs refer to it.</param>
    public WeightFile(string path, string name, int blockSize = DefaultBlockSize)
    {
        if (blockSize < 4096) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "at least 4096 bytes");
        Name = name;
        BlockSize = blockSize;
        _stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
    }

    public string Name { get; }

    public long Length => _stream.Length;

    public WeightRegion Append(ReadOnlySpan<byte> bytes)
    {
        int alignment = bytes.Length >= 64 * 1024 ? PageAlignment : SmallAlignment;
        long pad = (alignment - _stream.Position % alignment) % alignment;
        if (pad > 0)
        {
            _stream.Write(Zeros, 0, (int)pad);
            Hash(Zeros.AsSpan(0, (int)pad));
        }
        long offset = _stream.Position;
        _stream.Write(bytes);
        Hash(bytes);
        return new WeightRegion(Name, offset, bytes.Length);
    }

    /// <summary>Appends right after the previous bytes, with no padding: the next slice of a tensor written in parts.</summary>
    public WeightRegion AppendContiguous(ReadOnlySpan<byte> bytes)
    {
        long offset = _stream.Position;
        _stream.Write(bytes);
        Hash(bytes);
        return new WeightRegion(Name, offset, bytes.Length);
    }

    /// <summary>Flushes to disk and returns the SHA-256 of everything written (lower-case hex).</summary>
    public string Complete()
    {
        _stream.Flush(flushToDisk: true);
        if (_blockFill > 0) _blocks.Add(Convert.ToHexStringLower(_blockSha.GetHashAndReset()));
        _blockFill = 0;
        return Convert.ToHexStringLower(_sha.GetHashAndReset());
    }

    private void Hash(ReadOnlySpan<byte> bytes)
    {
        _sha.AppendData(bytes);
        while (!bytes.IsEmpty)
        {
            int take = (int)Math.Min(bytes.Length, BlockSize - _blockFill);
            _blockSha.AppendData(bytes[..take]);
            _blockFill += take;
            bytes = bytes[take..];
            if (_blockFill == BlockSize)
            {
                _blocks.Add(Convert.ToHexStringLower(_blockSha.GetHashAndReset()));
                _blockFill = 0;
            }
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        _sha.Dispose();
        _blockSha.Dispose();
    }
}
