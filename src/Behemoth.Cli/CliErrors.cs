using System.CommandLine;
using Behemoth.Package;

namespace Behemoth.Cli;

/// <summary>
/// Turns failures into one line on stderr and a non-zero exit code. Bad input (a <see cref="BehemothException"/>,
/// a missing or unreadable file) is the user's to fix and never shows a stack trace; anything else is a bug
/// and says so. <c>--verbose</c> adds the stack trace in both cases.
/// </summary>
internal static class CliErrors
{
    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Print stack traces with errors",
        Recursive = true,
    };

    public const int BadInput = 1;
    public const int InternalError = 70;

    public static Task<int> RunAsync(ParseResult parse, Func<Task<int>> action) => Task.FromResult(Run(parse, () => action().GetAwaiter().GetResult()));

    public static int Run(ParseResult parse, Func<int> action)
    {
        bool verbose = parse.GetValue(Verbose);
        try
        {
            return action();
        }
        catch (Exception e) when (e is BehemothException or NotSupportedException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            if (verbose) Console.Error.WriteLine(e);
            return BadInput;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return 130;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"internal error: {e.GetType().Name}: {e.Message}");
            Console.Error.WriteLine(verbose ? e.ToString() : "(run again with --verbose for the stack trace, and please report it)");
            return InternalError;
        }
    }
}
