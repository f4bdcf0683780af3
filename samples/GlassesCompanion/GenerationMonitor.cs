namespace Behemoth.Samples.GlassesCompanion;

/// <summary>Counters of generations since start (for /api/info, the load tool and the tests).</summary>
public sealed class GenerationMonitor
{
    private int _active, _queued;
    private long _completed, _cancelled, _rejected, _failed;

    public int Active => Volatile.Read(ref _active);
    public int Queued => Volatile.Read(ref _queued);
    public long Completed => Interlocked.Read(ref _completed);

    /// <summary>Generations (or waits for a slot) stopped because the client went away.</summary>
    public long Cancelled => Interlocked.Read(ref _cancelled);

    /// <summary>Requests answered 503 because every slot and the queue were full.</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>
    /// Awaited by every generation once it holds a slot and its response headers are out, before the prefill; null
    /// in the app. Tests set it to keep a generation running (or waiting) for exactly as long as they need, so no
    /// test depends on how fast this machine generates.
    /// </summary>
    internal Func<CancellationToken, Task>? Hold { get; set; }

    internal void Started() => Interlocked.Increment(ref _active);
    internal void Ended() => Interlocked.Decrement(ref _active);
    internal void Waiting() => Interlocked.Increment(ref _queued);
    internal void DoneWaiting() => Interlocked.Decrement(ref _queued);
    internal void Complete() => Interlocked.Increment(ref _completed);
    internal void Cancel() => Interlocked.Increment(ref _cancelled);
    internal void Reject() => Interlocked.Increment(ref _rejected);
    internal void Fail() => Interlocked.Increment(ref _failed);

    public MonitorSnapshot Snapshot() => new(Active, Queued, Completed, Cancelled, Rejected, Failed);

    /// <summary>Peak resident memory of this process (VmHWM on Linux, else the peak working set).</summary>
    public static long PeakRssBytes()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (var line in File.ReadLines("/proc/self/status"))
                    if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                        return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
            catch (IOException) { }
        }
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }
}
