namespace Behemoth.Cli;

/// <summary>Writes a file through a temporary sibling and a rename, so a failed or interrupted run never leaves a half-written output.</summary>
internal static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new IOException("the output path is empty");
        string full = Path.GetFullPath(path);
        var existing = new FileInfo(full);
        if (existing.Exists && existing.LinkTarget is not null)
        {
            // Write where a symbolic link points, keeping the link.
            full = existing.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
            existing = new FileInfo(full);
        }
        if (existing.Exists && (existing.Attributes & FileAttributes.Device) != 0 || IsSpecial(full))
        {
            // A device or pipe (/dev/null, a FIFO) cannot be replaced by a rename: write to it directly.
            using var special = new FileStream(full, FileMode.Open, FileAccess.Write);
            write(special);
            return;
        }
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir))
            throw new IOException($"{path}: the output directory {dir} does not exist");
        string temp = Path.Combine(dir ?? ".", $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    // .NET does not expose a Unix file's type; device files live under /dev (and Windows marks them Device).
    private static bool IsSpecial(string path) =>
        path.StartsWith("/dev/", StringComparison.Ordinal) && File.Exists(path);
}
