using System.IO.MemoryMappedFiles;
using Behemoth.Formats.Errors;

namespace Behemoth.Formats.Safetensors;

/// <summary>
/// A memory-mapped safetensors file. Opening reads and validates only the header; tensor bytes are read
/// from the mapping when asked for, so a process touches only the pages of the tensors it uses and a
/// checkpoint larger than RAM costs address space, not memory.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly Dictionary<string, TensorEntry> _tensors;
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _base;
    private long _bytesRead;
    private bool _disposed;
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _handle;
    private readonly Lock _handleLock = new();

    private SafetensorsFile(string path, long length, SafetensorsHeader.Parsed header, MemoryMappedFile? map, MemoryMappedViewAccessor? view)
    {
        Path = path;
        Length = length;
        Metadata = header.Metadata;
        _tensors = header.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        _map = map;
        _view = view;
        if (view is not null)
        {
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _base = pointer + view.PointerOffset;
        }
    }

    public string Path { get; }

    /// <summary>Size of the file in bytes.</summary>
    public long Length { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public IReadOnlyCollection<TensorEntry> Tensors => _tensors.Values;

    /// <summary>Total tensor bytes handed out by <see cref="GetBytes"/> since opening (what "lazy" is measured by).</summary>
    public long BytesRead => Interlocked.Read(ref _bytesRead);

    /// <summary>Opens and validates <paramref name="path"/>; the data is mapped, not read.</summary>
    public static SafetensorsFile Open(string path)
    {
        FileStream stream;
        try
        {
            // mapped: a regular file only (a FIFO in its place is refused without blocking)
            stream = Behemoth.Package.PackageFile.OpenRegular(path, 1, FileOptions.RandomAccess);
        }
        catch (Behemoth.Package.PackageFormatException e)
        {
            throw new CheckpointFormatException(path, $"cannot open: {e.Message[(path.Length + 2)..]}", inner: e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointFormatException(path, $"cannot open: {e.Message}", inner: e);
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            long length = stream.Length;
            Span<byte> prefix = stackalloc byte[8];
            int got = stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false);
            long headerLength = SafetensorsHeader.ReadHeaderLength(path, prefix[..got], length);
            var json = new byte[headerLength];
            stream.ReadExactly(json);
            var header = SafetensorsHeader.Parse(path, json, length - 8 - headerLength);

            // A zero-length file cannot be mapped; a file with no tensor data needs no mapping.
            map = MemoryMappedFile.CreateFromFile(stream, mapName: null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new SafetensorsFile(path, length, header, map, view);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw new CheckpointFormatException(path, $"cannot read: {e.Message}", inner: e);
        }
        catch
        {
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorEntry GetEntry(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _tensors.TryGetValue(name, out var entry)
            ? entry
            : throw new CheckpointFormatException(Path, "no such tensor in this file", name);
    }

    /// <summary>
    /// The raw little-endian bytes of <paramref name="entry"/>, or of the part of it starting at
    /// <paramref name="offset"/> bytes and <paramref name="length"/> long (one expert of a fused expert tensor).
    /// The span points into the mapping and is valid until this file is disposed.
    /// </summary>
    public ReadOnlySpan<byte> GetBytes(TensorEntry entry, long offset = 0, long length = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (length < 0) length = entry.ByteLength - offset;
        if (offset < 0 || offset + length > entry.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, {offset + length}) is outside tensor '{entry.Name}' ({entry.ByteLength} bytes)");
        if (length > int.MaxValue)
            throw new CheckpointFormatException(Path, $"a {length}-byte read is over the 2 GiB a span can hold; read it in slices", entry.Name);
        Interlocked.Add(ref _bytesRead, length);
        return new ReadOnlySpan<byte>(_base + entry.Offset + offset, (int)length);
    }

    /// <summary>
    /// Copies bytes [offset, offset + destination.Length) of <paramref name="entry"/> with a positioned read instead of
    /// through the mapping, so that streaming through a checkpoint does not keep its pages mapped into this process
    /// (the exporter's memory stays bounded by what it holds, not by the file size).
    /// </summary>
    public void CopyTo(TensorEntry entry, long offset, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || offset + destination.Length > entry.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range [{offset}, {offset + destination.Length}) is outside tensor '{entry.Name}' ({entry.ByteLength} bytes)");
        lock (_handleLock)
            _handle ??= File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        long position = entry.Offset + offset;
        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(_handle, destination, position);
            if (read <= 0)
                throw new CheckpointFormatException(Path, $"the file ended at byte {position} while reading the tensor (it shrank after opening)", entry.Name);
            destination = destination[read..];
            position += read;
            Interlocked.Add(ref _bytesRead, read);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _handle?.Dispose();
        if (_base is not null)
        {
            _view!.SafeMemoryMappedViewHandle.ReleasePointer();
            _base = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
