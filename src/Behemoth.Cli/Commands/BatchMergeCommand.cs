using System.CommandLine;
using Behemoth.Runtime.Batch;
using Behemoth.Runtime.Generation;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth batch-merge</c>: the shards' results files into one, every record exactly once.</summary>
internal static class BatchMergeCommand
{
    public static Command Create()
    {
        var files = new Argument<string[]>("results") { Description = "The shards' results files", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "Merged results file (written through a temporary file)", Required = true };
        var input = new Option<string?>("--in") { Description = "The job's prompts file: check that every line has a record and write them in its order (default: sorted by id)" };
        var command = new Command("batch-merge", "Merge the results files of a sharded batch job, checking that every id appears once") { files, output, input };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            string[] paths = parse.GetValue(files)!;
            string? inPath = parse.GetValue(input);
            var lines = inPath is null ? null : BatchInput.Read(inPath, new GenerationOptions());
            int count = BatchMerge.Merge(paths, parse.GetValue(output)!, lines);
            Console.Error.WriteLine($"merged {count} record(s) from {paths.Length} file(s) into {parse.GetValue(output)}"
                + (lines is null ? ", sorted by id" : $", in the order of {inPath}"));
            return 0;
        }));
        return command;
    }
}
