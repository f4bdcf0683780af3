using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Behemoth.Runtime.Batch;

/// <summary>
/// The exclusive lock a job holds on its results file: on the file itself (its inode), not on a path, so a second job
/// reaching the same file through a symbolic link, a hard link or another spelling of the path is refused too.
/// </summary>
/// <remarks>
/// Linux (64-bit): an open-file-description lock (<c>fcntl(F_OFD_SETLK)</c>, a write lock over the whole file) on the job's own
/// descriptor of the file. The kernel keys it by inode and drops it when the descriptor closes or the process dies,
/// however it dies. It is a record lock, independent of the <c>flock</c> locks .NET takes for <see cref="FileShare"/>,
/// so readers (<c>tail -f</c>, another .NET process opening the file to read) are not blocked.
/// Windows: the job's handle denies write sharing, which Windows enforces per file, whatever the link.
/// Other systems (macOS, BSDs, 32-bit Linux): the job's handle is opened with <see cref="FileShare.None"/>, an exclusive <c>flock</c>
/// on the inode; there .NET readers of the file are refused while the job runs (<c>cat</c>, <c>tail</c> are not).
/// </remarks>
internal static partial class ResultsFileLock
{
    private const int F_OFD_GETLK = 36, F_OFD_SETLK = 37;     // Linux ≥ 3.15, the same on every architecture
    private const int F_GETLK = 5, F_SETLK = 6;               // process-associated locks, for kernels without OFD locks
    private const short F_WRLCK = 1, F_UNLCK = 2;
    private const int EINVAL = 22, EAGAIN = 11, EACCES = 13;

    [StructLayout(LayoutKind.Sequential)]
    private struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;                  // 0: to the end of the file, however long it grows
        public int Pid;
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(SafeFileHandle fd, int command, ref Flock flock);

    /// <summary>
    /// How the job opens its results file: on Windows and Linux other processes may read it while the job runs; elsewhere
    /// the handle's own exclusive <c>flock</c> is the lock.
    /// </summary>
    public static FileShare Share => OperatingSystem.IsWindows() || UsesOfdLocks ? FileShare.Read : FileShare.None;

    // 64-bit Linux only: there struct flock has the 64-bit offsets of the layout above on every architecture
    private static bool UsesOfdLocks => (OperatingSystem.IsLinux() || OperatingSystem.IsAndroid()) && Environment.Is64BitProcess;

    /// <summary>Locks the file open as <paramref name="stream"/> (opened with <see cref="Share"/>) for as long as the stream is open.</summary>
    /// <exception cref="BatchJobException">Another job holds the file.</exception>
    public static void Acquire(FileStream stream, string path)
    {
        if (!UsesOfdLocks) return;     // the share mode of the handle is the lock
        int set = F_OFD_SETLK, get = F_OFD_GETLK;
        var flock = new Flock { Type = F_WRLCK, Whence = 0, Start = 0, Length = 0 };
        if (Fcntl(stream.SafeFileHandle, set, ref flock) == 0) return;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == EINVAL)
        {
            // a kernel before 3.15: a process-associated lock still keeps other processes out
            (set, get) = (F_SETLK, F_GETLK);
            flock = new Flock { Type = F_WRLCK, Whence = 0, Start = 0, Length = 0 };
            if (Fcntl(stream.SafeFileHandle, set, ref flock) == 0) return;
            errno = Marshal.GetLastPInvokeError();
        }
        // EAGAIN or EACCES mean another lock is in the way; ask the kernel rather than trust errno alone (an emulator
        // such as qemu-user may report another number)
        var probe = new Flock { Type = F_WRLCK, Whence = 0, Start = 0, Length = 0 };
        if (errno is EAGAIN or EACCES || (Fcntl(stream.SafeFileHandle, get, ref probe) == 0 && probe.Type != F_UNLCK))
            throw Held(path, null);
        throw new BatchJobException($"{path}: cannot lock the results file (errno {errno}); put it on a local file system that supports locks");
    }

    public static BatchJobException Held(string path, Exception? inner) =>
        new($"{path}: another job is writing this results file (it holds the file's lock, whichever path or link it opened it by); "
            + "wait for it to finish or give this job its own --out", inner);
}
