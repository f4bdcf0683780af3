using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Behemoth.Cli;

/// <summary>
/// The command line's own errors (an unknown command or option, a bad value, a missing argument or option) as one
/// line on stderr and exit code 1, in place of System.CommandLine's default of every error plus the whole help text:
/// the help belongs on stdout when asked for (<c>--help</c>), not mixed into a script's output after a typo. An
/// unknown command or option gets "did you mean" when a known one is at most two edits away (System.CommandLine's
/// own typo corrections print a multi-line list on stdout, so they are not used).
/// </summary>
internal static partial class ParseErrors
{
    /// <summary>True when <paramref name="parse"/> failed and would otherwise print System.CommandLine's error report.</summary>
    public static bool Failed(ParseResult parse) => parse.Errors.Count > 0 && parse.Action is ParseErrorAction;

    /// <summary>Writes the one line and returns the exit code.</summary>
    public static int Report(ParseResult parse, TextWriter stderr)
    {
        stderr.WriteLine("error: " + Describe(parse));
        return CliErrors.BadInput;
    }

    /// <summary>The most useful error first: a typo explains the missing values and stray arguments that follow it.</summary>
    internal static string Describe(ParseResult parse)
    {
        var result = parse.CommandResult;
        var command = result.Command;
        string path = CommandPath(result);
        var stray = StrayTokens(parse);

        if (stray.FirstOrDefault(LooksLikeOption) is { } option)
            return $"{path}: unknown option '{option}'" + Suggestion(option, OptionNames(result))
                + $" ('{path} --help' lists the options)";
        if (stray.Count > 0 && command.Subcommands.Count > 0)
            return $"unknown command '{stray[0]}'" + Suggestion(stray[0], command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))
                + $" ('{path} --help' lists the commands)";
        if (stray.Count > 0)
            return $"{path}: unexpected argument '{stray[0]}' ('{path} --help' shows the usage)";

        foreach (var error in parse.Errors)
            if (BadValue(error) is { } bad) return $"{path}: {bad}";

        if (command.Subcommands.Count > 0 && command.Action is null)
            return $"no command given ('{path} --help' lists the commands)";
        foreach (var argument in command.Arguments)
            if (argument.Arity.MinimumNumberOfValues > 0 && parse.GetResult(argument) is not ArgumentResult { Tokens.Count: > 0 })
                return $"{path}: missing argument <{argument.Name}> ('{path} --help' shows the usage)";
        foreach (var required in AllOptions(result).Where(o => o.Required))
            if (parse.GetResult(required) is null or OptionResult { Implicit: true })     // the parser adds an implicit result to report it on
                return $"{path}: missing option {required.Name} ('{path} --help' shows the usage)";

        return $"{path}: {OneLine(parse.Errors[0].Message)}";
    }

    /// <summary>Tokens no symbol took, in command-line order, and option-like tokens a command's argument took
    /// (System.CommandLine binds an unknown "--quantt" to a string argument when that argument is still free).</summary>
    private static List<string> StrayTokens(ParseResult parse)
    {
        var taken = parse.CommandResult.Children.OfType<ArgumentResult>().SelectMany(a => a.Tokens).Where(t => LooksLikeOption(t.Value));
        var stray = parse.UnmatchedTokens.ToHashSet();
        stray.UnionWith(taken.Select(t => t.Value));
        return [.. parse.Tokens.Select(t => t.Value).Where(stray.Contains).Distinct()];
    }

    private static bool LooksLikeOption(string token) =>
        token.Length > 1 && token[0] == '-' && !double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    /// <summary>A value that did not parse or is not among the accepted ones, named by its option or argument.</summary>
    private static string? BadValue(ParseError error)
    {
        string? owner = error.SymbolResult switch
        {
            OptionResult o => o.Option.Name,
            ArgumentResult { Parent: OptionResult o } => o.Option.Name,
            ArgumentResult a => $"<{a.Argument.Name}>",
            _ => null,
        };
        if (owner is null) return null;
        string message = OneLine(error.Message);
        if (NotAmong().Match(message) is { Success: true } among)
            return $"{owner} '{among.Groups[1].Value}' is not one of {string.Join(", ", Quoted().Matches(among.Groups[2].Value).Select(m => m.Groups[1].Value))}";
        if (CannotParse().Match(message) is { Success: true } parse)
            return $"{owner} '{parse.Groups[1].Value}' is not {TypeName(parse.Groups[2].Value)}";
        // required-option and arity messages are left to the checks after this one
        return error.SymbolResult is ArgumentResult { Tokens.Count: > 0 } ? $"{owner}: {message}" : null;
    }

    private static string TypeName(string type) => type switch
    {
        "System.Int32" or "System.Int64" or "System.UInt32" or "System.UInt64" or "System.Int16" => "a whole number",
        "System.Single" or "System.Double" or "System.Decimal" => "a number",
        "System.Boolean" => "true or false",
        _ => $"a valid {type.Split('.')[^1]}",
    };

    /// <summary>" (did you mean 'X'?)" for the closest candidate at most two edits away, or nothing.</summary>
    internal static string Suggestion(string typed, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = 3;
        foreach (var candidate in candidates)
        {
            int d = Distance(typed, candidate);
            if (d < bestDistance) (best, bestDistance) = (candidate, d);
        }
        return best is null ? "" : $"; did you mean '{best}'?";
    }

    /// <summary>Levenshtein distance (insertions, deletions, substitutions), case-sensitive as the parser is.</summary>
    internal static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    /// <summary>The command's options and those its ancestors pass down (--verbose, --help).</summary>
    private static IEnumerable<Option> AllOptions(CommandResult result)
    {
        foreach (var o in result.Command.Options) yield return o;
        for (var parent = result.Parent as CommandResult; parent is not null; parent = parent.Parent as CommandResult)
            foreach (var o in parent.Command.Options.Where(o => o.Recursive)) yield return o;
    }

    private static IEnumerable<string> OptionNames(CommandResult result) =>
        AllOptions(result).Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--", StringComparison.Ordinal));

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c; r = c.Parent)
            names.Add(c.Command is RootCommand ? "behemoth" : c.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    [GeneratedRegex(@"^Argument '(.*)' not recognized\. Must be one of: (.*)$")]
    private static partial Regex NotAmong();

    [GeneratedRegex(@"'([^']*)'")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"^Cannot parse argument '(.*)' for (?:option|command|argument) '.*' as expected type '(.*)'\.$")]
    private static partial Regex CannotParse();
}
