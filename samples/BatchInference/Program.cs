// Offline batch inference with the runtime SDK: a JSON-lines file of {"id", "prompt"} through one package into a
// JSON-lines file of {"id", "output", "tokens", "ms"}. Rerun it after a kill and it resumes where it stopped.
//
//   dotnet run --project samples/BatchInference -c Release -- <package> <prompts.jsonl> <results.jsonl>
//       [--profile NAME] [--workers K] [--shard i/N]
//
// Behemoth.Runtime.Batch does the rest: reading the lines (ids, per-line options, bad lines), the results file
// (skipping ids already done, appending each result with an fsync), the shard, and the generation itself, through
// the same loop as everything else in the SDK (Model → Generator).
using Behemoth.Runtime;
using Behemoth.Runtime.Batch;
using Behemoth.Runtime.Generation;

const string Usage = "usage: BatchInference <package> <prompts.jsonl> <results.jsonl> [--profile NAME] [--workers K] [--shard i/N]";
try
{
    var (package, input, output, profile, workers, shard) = Arguments.Parse(args);

    // Defaults for every line; a line's own max_tokens, temperature, top_k, top_p, seed or stop override them.
    var defaults = new GenerationOptions { MaxNewTokens = 64, Temperature = 0f, StopStrings = ["\n"] };

    // One model for all workers (ONNX Runtime runs concurrent calls), each run on cores / workers threads.
    using var model = Model.Open(package, new ModelOptions
    {
        Profile = profile,
        Provider = ExecutionProvider.Cpu,
        IntraOpThreads = Math.Max(1, Environment.ProcessorCount / workers),
    });
    using var results = BatchResultFile.Open(output);
    var lines = BatchInput.Read(input, defaults);
    var done = await BatchJob.RunAsync(model, lines, results, new BatchJobOptions { Parallelism = workers, Shard = shard });
    Console.Error.WriteLine($"{done.DoneThisRun} line(s) this run ({done.Errors} error record(s)), {done.GeneratedTokens} tokens in "
        + $"{done.Elapsed.TotalSeconds:F1} s ({done.TokensPerSecond:F0} tokens/s); results in {output}");
    return 0;
}
catch (UsageException e)
{
    Console.Error.WriteLine("BatchInference: " + e.Message);
    Console.Error.WriteLine(Usage);
    return 2;
}
catch (Exception e) when (e is Behemoth.Package.BehemothException or IOException or UnauthorizedAccessException)
{
    // a missing package, a tampered file, an unknown profile, an unreadable input (the SDK's BehemothException family,
    // or the file system's): one line, no stack trace
    Console.Error.WriteLine("BatchInference: " + e.Message);
    return 1;
}

internal static class Arguments
{
    public static (string Package, string Input, string Output, string Profile, int Workers, BatchShard Shard) Parse(string[] args)
    {
        var positional = new List<string>();
        string profile = "full";
        int workers = Environment.ProcessorCount;
        var shard = BatchShard.All;
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--profile": profile = Value(); break;
                case "--workers":
                    string w = Value();
                    if (!int.TryParse(w, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out workers) || workers < 1)
                        throw new UsageException($"--workers '{w}' is not a whole number of at least 1");
                    break;
                case "--shard":
                    string s = Value();
                    try { shard = BatchShard.Parse(s); }
                    catch (BatchJobException e) { throw new UsageException($"--shard '{s}': {e.Message}"); }
                    break;
                default:
                    if (args[i].StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"unknown option {args[i]}");
                    positional.Add(args[i]);
                    break;
            }
        }
        if (positional.Count != 3) throw new UsageException($"expected <package> <prompts.jsonl> <results.jsonl>, got {positional.Count} argument(s)");
        return (positional[0], positional[1], positional[2], profile, workers, shard);
    }
}

/// <summary>The command line is wrong; the message says how, and the usage follows it.</summary>
internal sealed class UsageException(string message) : Exception(message);
