// Offline batch inference with the runtime SDK: a JSON-lines file of {"id", "prompt"} through one package into a
// JSON-lines file of {"id", "output", "tokens", "ms"}. Rerun it after a kill and it resumes where it stopped.
//
//   dotnet run --project samples/BatchInference -c Release -- <package> <prompts.jsonl> <results.jsonl> [workers] [i/N]
//
// Behemoth.Runtime.Batch reads the lines (ids, per-line options, bad lines), keeps the results file (skipping ids
// already done, appending each result with an fsync) and picks the shard; the generation loop is written out here.
using System.Diagnostics;
using System.Text;
using Behemoth.Runtime;
using Behemoth.Runtime.Batch;
using Behemoth.Runtime.Generation;
using Behemoth.Runtime.Text;

if (args.Length is < 3 or > 5)
{
    Console.Error.WriteLine("usage: BatchInference <package> <prompts.jsonl> <results.jsonl> [workers] [shard i/N]");
    return 1;
}
string package = args[0], input = args[1], output = args[2];
int workers = args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : Environment.ProcessorCount;
var shard = args.Length > 4 ? BatchShard.Parse(args[4]) : BatchShard.All;

// Defaults for every line; a line's own max_tokens, temperature, top_k, top_p or seed override them.
var defaults = new GenerationOptions { MaxNewTokens = 64, Temperature = 0f, StopStrings = ["\n"] };

// One session for all workers (ONNX Runtime runs concurrent calls), each run on cores / workers threads.
using var session = DecoderSession.Open(package, "full", ExecutionProvider.Cpu, Math.Max(1, Environment.ProcessorCount / workers));
var tokenizer = ModelTokenizer.Load(package);
using var results = BatchResultFile.Open(output);
var todo = BatchInput.Read(input, defaults).Where(shard.Contains).Where(l => !results.IsFinished(l.Key)).ToList();
Console.Error.WriteLine($"{todo.Count} line(s) to run with {workers} worker(s)");

var clock = Stopwatch.StartNew();
long tokens = 0;
await Parallel.ForEachAsync(todo, new ParallelOptions { MaxDegreeOfParallelism = workers }, async (line, ct) =>
{
    if (line.Error is not null)
    {
        results.AppendError(line, line.Error);          // malformed JSON, no prompt, a bad option, a repeated id
        return;
    }
    // Each line its own generation: its own KV cache and sampler, so its text does not depend on the others.
    var stats = new GenerationStats();
    var text = new StringBuilder();
    var started = Stopwatch.StartNew();
    try
    {
        await foreach (string piece in TextGenerator.GenerateAsync(session, tokenizer, line.Prompt!, line.Options, stats, ct))
            text.Append(piece);
    }
    catch (ArgumentException e) when (e.ParamName == "prompt")
    {
        results.AppendError(line, e.Message.Split(';')[0]);    // too long for the context
        return;
    }
    results.AppendResult(line, text.ToString(), stats.GeneratedTokens, started.ElapsedMilliseconds);
    Interlocked.Add(ref tokens, stats.GeneratedTokens);
});
Console.Error.WriteLine($"{tokens} tokens in {clock.Elapsed.TotalSeconds:F1} s ({tokens / clock.Elapsed.TotalSeconds:F0} tokens/s); results in {output}");
return 0;
