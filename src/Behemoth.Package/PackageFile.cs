using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace Behemoth.Package;

/// <summary>
/// Reads a package file the way an untrusted input must be read: never blocking on the open (a FIFO or a device named
/// like a package file would hang a plain open forever), only regular files, and never more bytes than the caller
/// expects (a device that never ends is cut off). Every failure is a <see cref="PackageFormatException"/> naming the file.
/// </summary>
public static class PackageFile
{
    /// <summary>The most bytes a manifest, a graph or a tokenizer file may have: each is read whole into memory.</summary>
    public const long MaxWholeFileBytes = 1L << 30;

    /// <summary>Opens <paramref name="path"/> for reading if it is a regular file; the open itself never blocks.</summary>
    /// <exception cref="PackageFormatException">Missing, or not a regular file (a directory, FIFO, device or socket).</exception>
    public static FileStream OpenRegular(string path, int bufferSize = 1, FileOptions options = FileOptions.None)
    {
        if (Directory.Exists(path)) throw new PackageFormatException(path, "a directory, expected a file");
        if (!File.Exists(path)) throw new PackageFormatException(path, "missing");
        var stream = OpenOrThrow(path, () => OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()
            ? OpenNonBlocking(path)
            : File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, options), bufferSize);
        try
        {
            // a pipe, socket or terminal cannot seek; a character device (/dev/zero) reports no length but may seek
            if (!stream.CanSeek || (stream.Length == 0 && IsDevice(path)))
                throw new PackageFormatException(path, "not a regular file (a FIFO, device or socket)");
            return stream;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PackageFormatException)
        {
            stream.Dispose();
            throw e as PackageFormatException ?? new PackageFormatException(path, "cannot be read: " + e.Message);
        }
    }

    /// <summary>
    /// Opens an input the user names (a config, stats, calibration text, a batch's prompts) without ever blocking on
    /// the open: a regular file, or a pipe, which is then read as a stream (a FIFO nobody writes to reads as empty
    /// instead of hanging; one a process writes to, or a shell's <c>&lt;(…)</c>, streams as usual).
    /// </summary>
    /// <exception cref="PackageFormatException">Missing, a directory, or not openable.</exception>
    public static FileStream OpenInput(string path, int bufferSize = 1 << 16)
    {
        if (Directory.Exists(path)) throw new PackageFormatException(path, "a directory, expected a file");
        if (!File.Exists(path)) throw new PackageFormatException(path, "missing");
        if (!OperatingSystem.IsLinux()) return OpenOrThrow(path, () => File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite), bufferSize);
        return OpenOrThrow(path, () =>
        {
            var handle = OpenNonBlocking(path);
            // reads block as usual from here on (for a pipe: until its writer writes, or EOF when there is none)
            int fd = (int)handle.DangerousGetHandle();
            int flags = Fcntl(fd, 3 /* F_GETFL */, 0);
            if (flags < 0 || Fcntl(fd, 4 /* F_SETFL */, flags & ~0x800) < 0)
            {
                handle.Dispose();
                throw new IOException($"fcntl failed (errno {Marshal.GetLastPInvokeError()})");
            }
            return handle;
        }, bufferSize);
    }

    /// <summary>The whole input (see <see cref="OpenInput"/>), at most <paramref name="maxBytes"/> long.</summary>
    /// <exception cref="PackageFormatException">Missing, a directory, or longer than <paramref name="maxBytes"/>.</exception>
    public static byte[] ReadInput(string path, long maxBytes = MaxWholeFileBytes)
    {
        using var stream = OpenInput(path);
        using var memory = new MemoryStream();
        var buffer = new byte[1 << 16];
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            if (memory.Length + n > maxBytes) throw new PackageFormatException(path, $"longer than the {maxBytes:N0} bytes a file of its kind may have");
            memory.Write(buffer, 0, n);
        }
        return memory.ToArray();
    }

    private static FileStream OpenOrThrow(string path, Func<SafeFileHandle> open, int bufferSize)
    {
        SafeFileHandle handle;
        try
        {
            handle = open();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PackageFormatException(path, "cannot be opened: " + e.Message);
        }
        try
        {
            return new FileStream(handle, FileAccess.Read, bufferSize);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The whole file, at most <paramref name="maxBytes"/> long; with <paramref name="expected"/>, it must have that size
    /// and SHA-256, and the bytes returned are the bytes hashed (nothing is read again after the check).
    /// </summary>
    /// <exception cref="PackageFormatException">Missing, not a regular file, too long, or not the size or hash expected.</exception>
    public static byte[] ReadAll(string path, long maxBytes = MaxWholeFileBytes, FileEntry? expected = null, CancellationToken cancellationToken = default)
    {
        using var stream = OpenRegular(path);
        long length = stream.Length;
        if (expected is not null && length != expected.Bytes)
            throw new PackageFormatException(path, $"holds {length:N0} bytes, the manifest records {expected.Bytes:N0} (truncated or replaced)");
        if (length > maxBytes)
            throw new PackageFormatException(path, $"holds {length:N0} bytes, more than the {maxBytes:N0} a file of its kind may have");
        var bytes = new byte[length];
        int read = 0;
        while (read < bytes.Length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = stream.Read(bytes, read, Math.Min(bytes.Length - read, 1 << 20));
            if (n == 0) throw new PackageFormatException(path, $"ended after {read:N0} of its {length:N0} bytes (changed while being read)");
            read += n;
        }
        if (stream.Read(new byte[1]) != 0) throw new PackageFormatException(path, $"grew past {length:N0} bytes while being read");
        if (expected is not null)
        {
            string actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
            if (!string.Equals(actual, expected.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new PackageFormatException(path, $"SHA-256 {actual} does not match the manifest's {expected.Sha256} (the file was altered)");
        }
        return bytes;
    }

    private static bool IsDevice(string path) =>
        Path.GetFullPath(path).StartsWith("/dev/", StringComparison.Ordinal) || new FileInfo(path).LinkTarget is { } target && target.StartsWith("/dev/", StringComparison.Ordinal);

    // open(2) with O_NONBLOCK: a FIFO without a writer opens at once instead of waiting for one
    private static SafeFileHandle OpenNonBlocking(string path)
    {
        int flags = OperatingSystem.IsLinux() ? 0x800 | 0x80000 : 0x4 | 0x1000000;     // O_NONBLOCK | O_CLOEXEC (Linux; macOS/BSD)
        int fd = Open(path, flags);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"open failed (errno {errno}: {Marshal.GetPInvokeErrorMessage(errno)})");
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(int fd, int command, int argument);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
}
