using System.CommandLine;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary><c>--trust KEY.public</c> (repeatable): run only packages signed by one of these keys.</summary>
internal static class TrustOption
{
    public static Option<string[]> Create() => new("--trust")
    {
        Description = "Open only packages signed by this public key (behemoth keygen's .public file); repeat for several keys, e.g. while rotating",
        AllowMultipleArgumentsPerToken = false,
    };

    public static IReadOnlyList<TrustedKey> Keys(ParseResult parse, Option<string[]> option) =>
        [.. (parse.GetValue(option) ?? []).Select(TrustedKey.Load)];
}
