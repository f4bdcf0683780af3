using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Behemoth.Formats.Errors;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Text;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth run</c>: generate text from a prompt with one profile of a package, streaming to stdout.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var package = new Argument<string>("package") { Description = "Behemoth package directory" };
        var choice = new ProfileChoice();
        var generation = new GenerationOptionSet(perLine: false);
        var prompt = new Option<string>("--prompt") { Description = "Prompt text (the beginning-of-sequence token is added)", Required = true };
        var truncate = new Option<bool>("--truncate-prompt") { Description = "Drop the oldest prompt tokens when the prompt does not fit (default: refuse)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (text, token counts, timings) instead of streaming" };
        var provider = ProviderOption.Create();
        var command = new Command("run", "Generate text with a package")
        {
            package, prompt, truncate, json, provider,
        };
        choice.AddTo(command);
        generation.AddTo(command);
        command.SetAction((parse, cancellationToken) => CliErrors.RunAsync(parse, async () =>
        {
            string dir = parse.GetValue(package)!;
            var options = generation.Read(parse, parse.GetValue(truncate) ? PromptOverflow.TruncateStart : PromptOverflow.Refuse);
            // the budget counts a full context: the prompt may be truncated to fit, never more
            using var model = choice.OpenModel(parse, dir, int.MaxValue, ProviderOption.Parse(parse.GetValue(provider)), cancellationToken);
            var clock = Stopwatch.StartNew();
            TimeSpan? first = null;
            var text = new StringBuilder();
            try
            {
                await foreach (var piece in model.GenerateAsync(parse.GetValue(prompt)!, options, cancellationToken: cancellationToken))
                {
                    first ??= clock.Elapsed;
                    text.Append(piece);
                    if (!parse.GetValue(json)) Console.Write(piece);
                }
            }
            catch (PromptTooLongException e)
            {
                throw new BehemothException($"{e.Message}; shorten it, lower --max-tokens, or pass --truncate-prompt", e);
            }
            var elapsed = clock.Elapsed;
            if (parse.GetValue(json))
                Console.WriteLine(new JsonObject
                {
                    ["text"] = text.ToString(),
                    ["provider"] = model.Session.Provider.ToString().ToLowerInvariant(),
                    ["seconds"] = elapsed.TotalSeconds,
                    ["time_to_first_text_seconds"] = first?.TotalSeconds,
                }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            else
                Console.WriteLine();
            return 0;
        }));
        return command;
    }
}
