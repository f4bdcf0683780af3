using System.CommandLine;
using Behemoth.Package;

namespace Behemoth.Cli;

/// <summary>
/// Turns failures into one line on stderr and a non-zero exit code. Bad input (a <see cref="BehemothException"/>,
/// a missing or unreadable file, a file the JSON reader or ONNX Runtime refuses, text that is not UTF-8) is the user's
/// to fix, exits 1 and never shows a stack trace; anything else is a bug and says so (70). <c>--verbose</c> adds the
/// stack trace in both cases. The message is always one line.
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
        catch (Exception e) when (IsBadInput(e))
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
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
            Console.Error.WriteLine($"internal error: {e.GetType().Name}: {OneLine(e.Message)}");
            Console.Error.WriteLine(verbose ? e.ToString() : "(run again with --verbose for the stack trace, and please report it)");
            return InternalError;
        }
    }

    // an input file that does not parse, whichever reader found it (the readers of this repository name the file in
    // their own exceptions; these come from below them: System.Text.Json, the UTF-8 decoder, ONNX Runtime's loader)
    private static bool IsBadInput(Exception e) =>
        e is BehemothException or NotSupportedException or IOException or UnauthorizedAccessException
            or System.Text.Json.JsonException or InvalidDataException or System.Text.DecoderFallbackException
            or Microsoft.ML.OnnxRuntime.OnnxRuntimeException;

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
