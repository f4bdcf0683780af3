using Behemoth.Package;

namespace Behemoth.Cli;

/// <summary>
/// The bounds of <c>--threads</c> and <c>--parallel</c>: at most 4 × the logical cores of the machine
/// (<see cref="Environment.ProcessorCount"/>). Beyond that the threads only compete for the cores, and a value such as
/// 100000 would have ONNX Runtime create that many threads (minutes of hanging) or a KV cache per worker.
/// </summary>
internal static class ThreadLimits
{
    public static int Max => 4 * Math.Max(1, Environment.ProcessorCount);

    /// <summary><paramref name="value"/> when it is 0 (automatic) to <see cref="Max"/>; else a one-line error naming the option.</summary>
    public static int Threads(int value, string option = "--threads")
    {
        if (value < 0) throw new BehemothException($"{option} {value}: give 0 (automatic) or a thread count from 1 to {Max}");
        if (value > Max) throw new BehemothException($"{option} {value} is too many: the most is {Max} (4 × the {Environment.ProcessorCount} logical cores of this machine); give 0 (automatic) or 1 to {Max}");
        return value;
    }

    /// <summary><paramref name="value"/> when it is 1 to <see cref="Max"/>.</summary>
    public static int Workers(int value, string option = "--parallel")
    {
        if (value < 1) throw new BehemothException($"{option} {value}: give at least 1");
        if (value > Max) throw new BehemothException($"{option} {value} is too many: the most is {Max} (4 × the {Environment.ProcessorCount} logical cores of this machine)");
        return value;
    }
}
