using System.CommandLine;
using Behemoth.Cli;
using Behemoth.Cli.Commands;

var root = new RootCommand("Behemoth: carve device-sized models out of Mixture-of-Experts checkpoints and run them on-device.");
root.Options.Add(CliErrors.Verbose);
root.Subcommands.Add(InspectCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(ExportCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(ProfileCommand.Create());
root.Subcommands.Add(PlanCommand.Create());
root.Subcommands.Add(BatchCommand.Create());
root.Subcommands.Add(BatchMergeCommand.Create());
root.Subcommands.Add(SigningCommands.Keygen());
root.Subcommands.Add(SigningCommands.Sign());
var parse = root.Parse(args);
// the parser's own errors are one line on stderr (ParseErrors); --help still prints the help on stdout
if (ParseErrors.Failed(parse)) return ParseErrors.Report(parse, Console.Error);
return parse.Invoke();
