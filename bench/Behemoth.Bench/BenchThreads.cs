using System.CommandLine;

namespace Behemoth.Bench;

/// <summary>--threads from 0 to 4 × the logical cores, as the behemoth command line bounds it (100000 would have ONNX Runtime start that many threads).</summary>
internal static class BenchThreads
{
    public static void Bound(Option<int> threads) => threads.Validators.Add(result =>
    {
        int value = result.GetValueOrDefault<int>(), max = 4 * Math.Max(1, Environment.ProcessorCount);
        if (value < 0 || value > max)
            result.AddError($"--threads {value}: give 0 (ONNX Runtime's default) to {max} (4 × the {Environment.ProcessorCount} logical cores)");
    });
}
