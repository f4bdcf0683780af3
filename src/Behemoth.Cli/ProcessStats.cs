namespace Behemoth.Cli;

/// <summary>This process's memory and I/O counters from /proc (Linux); null elsewhere.</summary>
internal static class ProcessStats
{
    /// <summary>Resident set now (VmRSS), bytes.</summary>
    public static long? Rss() => StatusField("VmRSS:");

    /// <summary>Peak resident set so far (VmHWM), bytes.</summary>
    public static long? PeakRss() => StatusField("VmHWM:");

    /// <summary>Bytes this process has read through read() and friends (rchar in /proc/self/io), page cache hits included.</summary>
    public static long? BytesRead()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/io"))
                if (line.StartsWith("rchar:", StringComparison.Ordinal)) return long.Parse(line[6..].Trim());
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    private static long? StatusField(string name)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(name, StringComparison.Ordinal))
                    return long.Parse(line[name.Length..].Trim().Split(' ')[0]) * 1024;    // kB
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
