using System.CommandLine;
using Behemoth.Runtime;

namespace Behemoth.Cli.Commands;

/// <summary>--provider auto|cpu|cuda|dml, shared by the commands that run a package.</summary>
internal static class ProviderOption
{
    public static Option<string> Create()
    {
        var option = new Option<string>("--provider")
        {
            Description = "Execution provider: auto (CUDA if its libraries load, DirectML on Windows, else CPU), cpu, cuda, dml",
            DefaultValueFactory = _ => "auto",
        };
        option.AcceptOnlyFromAmong("auto", "cpu", "cuda", "dml");
        return option;
    }

    public static ExecutionProvider Parse(string? value) => value switch
    {
        "cpu" => ExecutionProvider.Cpu,
        "cuda" => ExecutionProvider.Cuda,
        "dml" => ExecutionProvider.DirectML,
        _ => ExecutionProvider.Auto,
    };
}
