using System.CommandLine;
using System.Globalization;
using Behemoth.Formats.Errors;
using Behemoth.Runtime.Batch;
using Behemoth.Runtime.Generation;
using Behemoth.Text;
using Spectre.Console;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary>
/// <c>behemoth batch</c>: a JSON-lines file of prompts through a package into a JSON-lines file of results, resumable
/// (a rerun of the same command skips what is done), with several workers and deterministic sharding.
/// The job itself is <see cref="BatchJob"/> in the runtime SDK; this adds options, the session and progress.
/// </summary>
internal static class BatchCommand
{
    public static Command Create()
    {
        var package = new Argument<string>("package") { Description = "Behemoth package directory" };
        var input = new Option<string>("--in") { Description = "Prompts: one JSON object per line, {\"id\": …, \"prompt\": \"…\"} with optional max_tokens, temperature, top_k, top_p, seed, repetition_penalty, stop", Required = true };
        var output = new Option<string>("--out") { Description = "Results, appended one JSON line per prompt; rerunning the same command resumes it", Required = true };
        var choice = new ProfileChoice();
        var generation = new GenerationOptionSet(perLine: true);
        var parallel = new Option<int>("--parallel") { Description = $"Prompts generated at once (workers over one session), 1 to {ThreadLimits.Max} (4 × cores)", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = $"ONNX Runtime threads per worker, at most {ThreadLimits.Max} (4 × cores); 0 = cores / --parallel when --parallel > 1, else ONNX Runtime's default", DefaultValueFactory = _ => 0 };
        var shard = new Option<string>("--shard") { Description = "Run shard i of N (i/N, i from 0), e.g. --shard $JOB_COMPLETION_INDEX/4; lines go to shards by a hash of their id", DefaultValueFactory = _ => "0/1" };
        var logEvery = new Option<double>("--log-interval") { Description = "Seconds between progress lines on stderr when it is not a terminal", DefaultValueFactory = _ => 10 };
        var provider = ProviderOption.Create();
        var command = new Command("batch", "Generate for every prompt of a JSON-lines file, resumably, in parallel and in shards")
        {
            package, input, output, parallel, threads, shard, logEvery, provider,
        };
        choice.AddTo(command);
        generation.AddTo(command);
        command.SetAction((parse, cancellationToken) => CliErrors.RunAsync(parse, async () =>
        {
            string dir = parse.GetValue(package)!;
            var defaults = generation.Read(parse);
            int workers = ThreadLimits.Workers(parse.GetValue(parallel));
            int perWorker = ThreadLimits.Threads(parse.GetValue(threads));
            double interval = parse.GetValue(logEvery);
            if (!(interval >= 0 && interval <= 86400))
                throw new BehemothException($"--log-interval {interval}: give seconds from 0 to 86400 (a day); below 0.1 counts as 0.1");
            if (perWorker == 0 && workers > 1) perWorker = Math.Max(1, Environment.ProcessorCount / workers);
            var job = new BatchJobOptions { Parallelism = workers, Shard = BatchShard.Parse(parse.GetValue(shard)!) };

            string inPath = parse.GetValue(input)!, outPath = parse.GetValue(output)!;
            var lines = BatchInput.Read(inPath, defaults);
            // the results file first: its lock (another job on it, through any link) and its records are checked before the model loads
            using var results = BatchResultFile.Open(outPath);
            using var model = choice.OpenModel(parse, dir, int.MaxValue, ProviderOption.Parse(parse.GetValue(provider)), cancellationToken, perWorker);
            if (results.DroppedBytes > 0)
                Console.Error.WriteLine($"{outPath}: dropped a torn last line ({results.DroppedBytes} bytes) left by an interrupted run");
            int already = results.FinishedKeys.Count;
            if (already > 0) Console.Error.WriteLine($"{outPath}: resuming, {already} line(s) already done");

            BatchProgress final;
            if (!Console.IsOutputRedirected && !Console.IsErrorRedirected)
                final = await WithProgressBarAsync(p => BatchJob.RunAsync(model, lines, results, job, p, cancellationToken), job.Shard);
            else
            {
                var log = new LogProgress(TimeSpan.FromSeconds(Math.Max(0.1, interval)));
                final = await BatchJob.RunAsync(model, lines, results, job, log, cancellationToken);
            }
            Console.Error.WriteLine($"done: {final.Total} line(s) of shard {job.Shard} in {outPath} ({final.DoneThisRun} this run, {final.Errors} error record(s)); "
                + $"{final.GeneratedTokens} tokens in {final.Elapsed.TotalSeconds:F1} s = {final.TokensPerSecond:F1} tokens/s with {workers} worker(s)");
            return 0;
        }));
        return command;
    }

    /// <summary>A Spectre.Console bar on stderr: lines done, ETA, tokens/s.</summary>
    private static async Task<BatchProgress> WithProgressBarAsync(Func<IProgress<BatchProgress>, Task<BatchProgress>> run, BatchShard shard)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        BatchProgress? result = null;
        await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(shard.Count == 1 ? "batch" : $"shard {shard}");
                result = await run(new BarProgress(task));
            });
        return result!;
    }

    private sealed class BarProgress(ProgressTask task) : IProgress<BatchProgress>
    {
        public void Report(BatchProgress value)
        {
            task.MaxValue = Math.Max(1, value.Total);
            task.Value = value.Done;
            task.Description = string.Create(CultureInfo.InvariantCulture,
                $"{value.Done}/{value.Total} lines, {value.Errors} errors, {value.TokensPerSecond:F1} tokens/s");
        }
    }

    /// <summary>Plain progress lines on stderr, at most one per interval (and the first and last).</summary>
    private sealed class LogProgress(TimeSpan interval) : IProgress<BatchProgress>
    {
        private readonly Lock _gate = new();
        private TimeSpan? _last;

        public void Report(BatchProgress value)
        {
            lock (_gate)
            {
                if (value.Done < value.Total && _last is { } last && value.Elapsed - last < interval) return;
                _last = value.Elapsed;
                string eta = value.Remaining is { } r ? r.ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture) : "?";
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"batch: {value.Done}/{value.Total} lines ({value.Errors} errors this run), {value.TokensPerSecond:F1} tokens/s, ETA {eta}"));
            }
        }
    }
}
