using System.CommandLine;
using Behemoth.Bench;

var root = new RootCommand("Behemoth benchmarks (speed and memory, as ratios against a baseline measured in the same run)");
root.Subcommands.Add(ExportMemoryBench.Create());
root.Subcommands.Add(ExportMemoryBench.CreateChild());
root.Subcommands.Add(GenAiGreedy.Create());
root.Subcommands.Add(GenAiCompare.Create());
root.Subcommands.Add(PruningTable.Create());
root.Subcommands.Add(KdCost.Create());
root.Subcommands.Add(GenerationOverhead.Create());
root.Subcommands.Add(ConversationTurns.Create());
return root.Parse(args).Invoke();
