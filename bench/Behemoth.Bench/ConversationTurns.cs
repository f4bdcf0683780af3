using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Behemoth.Runtime;
using Microsoft.Extensions.AI;

namespace Behemoth.Bench;

/// <summary>
/// <c>conversation-turns</c>: time to first token of each turn of a conversation through the package's chat client,
/// with the conversation's KV cache kept (<see cref="ChatOptions.ConversationId"/>) against the same turn run from
/// scratch; the two alternate turn by turn, greedy, so both give the same replies.
/// </summary>
internal static class ConversationTurns
{
    public static Command Create()
    {
        var package = new Argument<string>("package") { Description = "Package directory" };
        var profile = new Option<string>("--profile") { Description = "Device profile", DefaultValueFactory = _ => "full" };
        var turns = new Option<int>("--turns") { Description = "Turns per conversation", DefaultValueFactory = _ => 5 };
        var runs = new Option<int>("--runs") { Description = "Conversations (medians over them)", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: its default)", DefaultValueFactory = _ => 0 };
        var command = new Command("conversation-turns", "Time to first token per turn, conversation cache kept against from scratch") { package, profile, turns, runs, threads };
        command.SetAction(async parse =>
        {
            using var model = Model.Open(parse.GetValue(package)!, new ModelOptions { Profile = parse.GetValue(profile)!, Provider = ExecutionProvider.Cpu, IntraOpThreads = parse.GetValue(threads) });
            using var client = model.AsChatClient();
            string[] questions = ["Translate to Italian: the weather is nice today.", "And: we are going to the sea.", "And: the water is cold.",
                "And: my brother lives in Rome.", "And: where is the station?", "And: it is raining.", "And: good night."];
            int n = parse.GetValue(turns);
            var cachedMs = Enumerable.Range(0, n).Select(_ => new List<double>()).ToArray();
            var freshMs = Enumerable.Range(0, n).Select(_ => new List<double>()).ToArray();
            var cachedTokens = new int[n];
            var promptTokens = new int[n];
            for (int r = 0; r <= parse.GetValue(runs); r++)
            {
                var history = new List<ChatMessage>();
                string id = $"bench-{r}";
                for (int t = 0; t < n; t++)
                {
                    history.Add(new ChatMessage(ChatRole.User, questions[t % questions.Length]));
                    var (fresh, _, _, _) = await FirstToken(client, history, null);
                    var (cached, reply, inCache, prompt) = await FirstToken(client, history, id);
                    history.Add(new ChatMessage(ChatRole.Assistant, reply));
                    if (r == 0) continue;       // warm-up
                    cachedMs[t].Add(cached);
                    freshMs[t].Add(fresh);
                    (cachedTokens[t], promptTokens[t]) = (inCache, prompt);
                }
            }
            var report = new JsonArray();
            for (int t = 0; t < n; t++)
                report.Add(new JsonObject
                {
                    ["turn"] = t + 1,
                    ["prompt_tokens"] = promptTokens[t],
                    ["cached_tokens"] = cachedTokens[t],
                    ["ttft_ms_cached"] = Statistics.Median(cachedMs[t]),
                    ["ttft_ms_from_scratch"] = Statistics.Median(freshMs[t]),
                    ["from_scratch_over_cached"] = Statistics.Median(freshMs[t]) / Statistics.Median(cachedMs[t]),
                });
            Console.WriteLine(new JsonObject { ["package"] = parse.GetValue(package), ["profile"] = parse.GetValue(profile), ["turns"] = report }
                .ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return command;
    }

    // one turn, streamed: milliseconds to the first text, the reply, and the prompt tokens cached and in all
    private static async Task<(double Ms, string Reply, int Cached, int Prompt)> FirstToken(IChatClient client, List<ChatMessage> history, string? conversation)
    {
        var options = new ChatOptions { MaxOutputTokens = 24, ConversationId = conversation };
        var clock = Stopwatch.StartNew();
        double first = double.NaN;
        var text = new System.Text.StringBuilder();
        UsageDetails? usage = null;
        await foreach (var update in client.GetStreamingResponseAsync(history, options))
        {
            if (double.IsNaN(first) && update.Text.Length > 0) first = clock.Elapsed.TotalMilliseconds;
            text.Append(update.Text);
            usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details ?? usage;
        }
        return (double.IsNaN(first) ? clock.Elapsed.TotalMilliseconds : first, text.ToString(), (int)(usage?.CachedInputTokenCount ?? 0), (int)(usage?.InputTokenCount ?? 0));
    }
}
