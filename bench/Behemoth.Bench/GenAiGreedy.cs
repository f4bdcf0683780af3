using System.CommandLine;
using Microsoft.ML.OnnxRuntimeGenAI;

namespace Behemoth.Bench;

/// <summary>
/// <c>genai-greedy PACKAGE --tokens "1 2 3"</c>: loads a Behemoth package with onnxruntime-genai (through the
/// genai_config.json the exporter writes) and prints its greedy continuation, to compare with
/// <c>behemoth logits</c> / the runtime's greedy tokens.
/// </summary>
internal static class GenAiGreedy
{
    public static Command Create()
    {
        var package = new Argument<string>("package");
        var tokens = new Option<string>("--tokens") { Description = "Prompt token ids", Required = true };
        var maxLength = new Option<int>("--max-length") { Description = "Total sequence length", DefaultValueFactory = _ => 32 };
        var command = new Command("genai-greedy", "Greedy tokens of a package run by onnxruntime-genai") { package, tokens, maxLength };
        command.SetAction(parse =>
        {
            int[] ids = parse.GetValue(tokens)!.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            using var model = new Model(parse.GetValue(package)!);
            using var options = new GeneratorParams(model);
            options.SetSearchOption("max_length", parse.GetValue(maxLength));
            options.SetSearchOption("do_sample", false);
            using var generator = new Generator(model, options);
            generator.AppendTokens(ids);
            while (!generator.IsDone()) generator.GenerateNextToken();
            Console.WriteLine(string.Join(' ', generator.GetSequence(0).ToArray()));
            return 0;
        });
        return command;
    }
}
