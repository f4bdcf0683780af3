using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Behemoth.Formats.Errors;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Runtime.Text;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth run</c>: generate text from a prompt with one profile of a package, streaming to stdout.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var package = new Argument<string>("package") { Description = "Behemoth package directory" };
        var choice = new ProfileChoice();
        var prompt = new Option<string>("--prompt") { Description = "Prompt text (the beginning-of-sequence token is added)", Required = true };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most new tokens", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Sample among the k most likely tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Sample within this probability mass", DefaultValueFactory = _ => 1f };
        var penalty = new Option<float>("--repetition-penalty") { Description = "1 = off", DefaultValueFactory = _ => 1f };
        var seed = new Option<int?>("--seed") { Description = "Same seed, same text" };
        var stop = new Option<string[]>("--stop") { Description = "Stop strings (repeatable); \\n is a newline", AllowMultipleArgumentsPerToken = false };
        var truncate = new Option<bool>("--truncate-prompt") { Description = "Drop the oldest prompt tokens when the prompt does not fit (default: refuse)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (text, token counts, timings) instead of streaming" };
        var provider = ProviderOption.Create();
        var command = new Command("run", "Generate text with a package")
        {
            package, prompt, maxTokens, temperature, topK, topP, penalty, seed, stop, truncate, json, provider,
        };
        choice.AddTo(command);
        command.SetAction((parse, cancellationToken) => CliErrors.RunAsync(parse, async () =>
        {
            string dir = parse.GetValue(package)!;
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxTokens),
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                RepetitionPenalty = parse.GetValue(penalty),
                Seed = parse.GetValue(seed),
                StopStrings = (parse.GetValue(stop) ?? []).Select(s => s.Replace("\\n", "\n", StringComparison.Ordinal)).ToArray(),
                Overflow = parse.GetValue(truncate) ? PromptOverflow.TruncateStart : PromptOverflow.Refuse,
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new BehemothException($"invalid generation option {e.ParamName}: {e.Message.Split(" (Parameter")[0]}");
            }
            // the budget counts a full context: the prompt may be truncated to fit, never more
            using var session = choice.Open(parse, dir, int.MaxValue, ProviderOption.Parse(parse.GetValue(provider)), cancellationToken);
            var tokenizer = ModelTokenizer.Load(dir);
            var clock = Stopwatch.StartNew();
            TimeSpan? first = null;
            var text = new StringBuilder();
            try
            {
                await foreach (var piece in TextGenerator.GenerateAsync(session, tokenizer, parse.GetValue(prompt)!, options, cancellationToken))
                {
                    first ??= clock.Elapsed;
                    text.Append(piece);
                    if (!parse.GetValue(json)) Console.Write(piece);
                }
            }
            catch (ArgumentException e) when (e.ParamName == "prompt")
            {
                throw new BehemothException(e.Message.Split(" (Parameter")[0]);
            }
            var elapsed = clock.Elapsed;
            if (parse.GetValue(json))
                Console.WriteLine(new JsonObject
                {
                    ["text"] = text.ToString(),
                    ["provider"] = session.Provider.ToString().ToLowerInvariant(),
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
