using System.CommandLine;
using Behemoth.Formats.Errors;
using Behemoth.Runtime.Generation;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary>--max-tokens, --temperature, --top-k, --top-p, --repetition-penalty, --seed, --stop: shared by run and batch.</summary>
internal sealed class GenerationOptionSet
{
    /// <param name="perLine">batch: each line of the input may override the options, and the help says so.</param>
    public GenerationOptionSet(bool perLine)
    {
        MaxTokens = new("--max-tokens") { Description = perLine ? "Most new tokens per prompt (a line's max_tokens overrides)" : "Most new tokens", DefaultValueFactory = _ => 128 };
        Temperature = new("--temperature") { Description = perLine ? "0 = greedy (a line's temperature overrides)" : "0 = greedy", DefaultValueFactory = _ => 0f };
        Seed = new("--seed")
        {
            Description = perLine ? "Seed of every line's own sampler (a line's seed overrides): same seed, same text, whatever else runs" : "Same seed, same text",
        };
    }

    public Option<int> MaxTokens { get; }
    public Option<float> Temperature { get; }
    public Option<int> TopK { get; } = new("--top-k") { Description = "Sample among the k most likely tokens (0 = all)", DefaultValueFactory = _ => 0 };
    public Option<float> TopP { get; } = new("--top-p") { Description = "Sample within this probability mass", DefaultValueFactory = _ => 1f };
    public Option<float> Penalty { get; } = new("--repetition-penalty") { Description = "1 = off", DefaultValueFactory = _ => 1f };
    public Option<int?> Seed { get; }
    public Option<string[]> Stop { get; } = new("--stop") { Description = "Stop strings (repeatable); \\n is a newline", AllowMultipleArgumentsPerToken = false };

    public void AddTo(Command command)
    {
        foreach (Option option in new Option[] { MaxTokens, Temperature, TopK, TopP, Penalty, Seed, Stop }) command.Options.Add(option);
    }

    /// <summary>The options as given, checked: an out-of-range value is bad input naming the option.</summary>
    public GenerationOptions Read(ParseResult parse, PromptOverflow overflow = PromptOverflow.Refuse)
    {
        var options = new GenerationOptions
        {
            MaxNewTokens = parse.GetValue(MaxTokens),
            Temperature = parse.GetValue(Temperature),
            TopK = parse.GetValue(TopK),
            TopP = parse.GetValue(TopP),
            RepetitionPenalty = parse.GetValue(Penalty),
            Seed = parse.GetValue(Seed),
            StopStrings = (parse.GetValue(Stop) ?? []).Select(s => s.Replace("\\n", "\n", StringComparison.Ordinal)).ToArray(),
            Overflow = overflow,
        };
        if (options.FindOutOfRange() is var (option, _, reason))
            throw new BehemothException($"invalid generation option {Flag(option)}: {reason}");
        return options;
    }

    /// <summary>The command-line option of a <see cref="GenerationOptions"/> property.</summary>
    private static string Flag(string property) => property switch
    {
        nameof(GenerationOptions.MaxNewTokens) => "--max-tokens",
        nameof(GenerationOptions.Temperature) => "--temperature",
        nameof(GenerationOptions.TopK) => "--top-k",
        nameof(GenerationOptions.TopP) => "--top-p",
        nameof(GenerationOptions.RepetitionPenalty) => "--repetition-penalty",
        nameof(GenerationOptions.StopStrings) => "--stop",
        _ => property,
    };
}
