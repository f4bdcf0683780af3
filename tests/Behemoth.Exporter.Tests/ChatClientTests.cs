using System.Text;
using Behemoth.Runtime;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Behemoth.Runtime.Generation;
using Microsoft.Extensions.AI;

namespace Behemoth.Exporter.Tests;

/// <summary>BehemothChatClient: the IChatClient contract over a package exported from a golden checkpoint.</summary>
public sealed class ChatClientTests(ChatPackageFixture package) : IClassFixture<ChatPackageFixture>
{
    private static readonly ChatMessage[] Conversation = [new(ChatRole.User, "Hello there")];

    private BehemothChatClient NewClient(BehemothChatClientOptions? options = null) =>
        new(package.Session, package.Tokenizer, options, metrics: new RuntimeMetrics(new TestMeterFactory()));

    [Fact]
    public async Task Streaming_text_is_the_non_streaming_response_for_greedy_decoding()
    {
        using var client = NewClient();
        var options = new ChatOptions { MaxOutputTokens = 16 };
        var response = await client.GetResponseAsync(Conversation, options);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation, options)) updates.Add(update);

        Assert.NotEmpty(response.Text);
        Assert.True(updates.Count > 2, "text should arrive in pieces");
        Assert.Equal(response.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());

        // the last update carries the finish reason and the usage, as the whole response does
        var last = updates[^1];
        Assert.Equal(response.FinishReason, last.FinishReason);
        var usage = Assert.IsType<UsageContent>(Assert.Single(last.Contents)).Details;
        Assert.Equal(response.Usage!.InputTokenCount, usage.InputTokenCount);
        Assert.Equal(response.Usage.OutputTokenCount, usage.OutputTokenCount);

        var coalesced = updates.ToChatResponse();
        Assert.Equal(response.Text, coalesced.Text);
        Assert.Equal(response.FinishReason, coalesced.FinishReason);
        Assert.Equal(response.Usage.OutputTokenCount, coalesced.Usage?.OutputTokenCount);
        Assert.Equal("pkg/full", coalesced.ModelId);
    }

    [Fact]
    public async Task ChatOptions_Seed_makes_sampling_repeat_and_other_seeds_differ()
    {
        using var client = NewClient();
        async Task<string> Sample(long seed) =>
            (await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 24, Temperature = 1.5f, TopK = 50, TopP = 0.95f, Seed = seed })).Text;

        string first = await Sample(7);
        Assert.Equal(first, await Sample(7));
        Assert.NotEqual(first, await Sample(8));
    }

    [Fact]
    public async Task MaxOutputTokens_ends_the_reply_with_FinishReason_Length_and_Usage_counts_the_tokens()
    {
        using var client = NewClient();
        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 5 });

        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(5, response.Usage!.OutputTokenCount);
        // the plain prompt, one token per character, after the beginning-of-sequence token
        int promptTokens = 1 + "User: Hello there\nAssistant:".Length;
        Assert.Equal(promptTokens, response.Usage.InputTokenCount);
        Assert.Equal(promptTokens + 5, response.Usage.TotalTokenCount);
        Assert.Equal(5, response.Text.Length);
        Assert.Equal("pkg/full", response.ModelId);
        Assert.Equal(ChatRole.Assistant, Assert.Single(response.Messages).Role);
    }

    [Fact]
    public async Task A_stop_sequence_ends_the_reply_before_it_with_FinishReason_Stop()
    {
        using var client = NewClient();
        string full = (await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 12 })).Text;
        Assert.True(full.Length >= 6, $"greedy reply too short to pick a stop sequence from: '{full}'");
        string stop = full.Substring(4, 2);

        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 12, StopSequences = [stop] });

        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.True(response.Usage!.OutputTokenCount <= 6);
    }

    [Fact]
    public async Task Cancellation_throws_OperationCanceledException_and_frees_the_client_for_the_next_request()
    {
        using var client = NewClient();
        using var cts = new CancellationTokenSource();
        int pieces = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 1000, Temperature = 1, Seed = 1 }, cts.Token))
                if (++pieces == 3) cts.Cancel();
        });
        Assert.Equal(3, pieces);

        var after = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 3 }).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(ChatFinishReason.Length, after.FinishReason);
    }

    [Fact]
    public async Task Concurrent_requests_on_one_client_run_one_at_a_time_and_match_sequential_ones()
    {
        using var client = NewClient();
        var options = new ChatOptions { MaxOutputTokens = 10 };
        string expected = (await client.GetResponseAsync(Conversation, options)).Text;
        var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => client.GetResponseAsync(Conversation, options)));
        Assert.All(replies, r => Assert.Equal(expected, r.Text));
    }

    [Fact]
    public void GetService_returns_behemoth_metadata_the_client_and_its_session()
    {
        using var client = NewClient();
        var metadata = client.GetService<ChatClientMetadata>();
        Assert.NotNull(metadata);
        Assert.Equal("behemoth", metadata.ProviderName);
        Assert.Equal("pkg/full", metadata.DefaultModelId);
        Assert.Equal(new Uri(Path.GetFullPath(package.PackageDirectory)), metadata.ProviderUri);
        Assert.Same(client, client.GetService<IChatClient>());
        Assert.Same(client, client.GetService<BehemothChatClient>());
        Assert.Same(package.Session, client.GetService<DecoderSession>());
        Assert.Null(client.GetService<ChatClientMetadata>("some key"));
        Assert.Null(client.GetService(typeof(string)));
    }

    [Fact]
    public void ChatOptions_map_onto_generation_options_over_the_client_defaults()
    {
        using var client = NewClient(new BehemothChatClientOptions
        {
            Generation = new GenerationOptions { MaxNewTokens = 64, StopStrings = ["###"], TopK = 7 },
        });
        var g = client.ToGenerationOptions(new ChatOptions
        {
            MaxOutputTokens = 9,
            Temperature = 0.7f,
            TopP = 0.9f,
            Seed = 42,
            StopSequences = ["END"],
            AdditionalProperties = new() { [BehemothChatClient.RepetitionPenaltyKey] = 1.3 },
        });
        Assert.Equal(9, g.MaxNewTokens);
        Assert.Equal(0.7f, g.Temperature);
        Assert.Equal(7, g.TopK);                            // not set in the request: the client's default
        Assert.Equal(0.9f, g.TopP);
        Assert.Equal(42, g.Seed);
        Assert.Equal(1.3f, g.RepetitionPenalty);
        Assert.Equal(["###", "\nUser:", "END"], g.StopStrings);

        var defaults = client.ToGenerationOptions(null);
        Assert.Equal((64, 0f, 1f, (int?)null), (defaults.MaxNewTokens, defaults.Temperature, defaults.RepetitionPenalty, defaults.Seed));
        Assert.Throws<ArgumentOutOfRangeException>(() => client.ToGenerationOptions(new ChatOptions { TopP = 0 }));
    }

    [Fact]
    public async Task The_prompt_comes_from_the_pluggable_formatter_with_instructions_as_a_leading_system_message()
    {
        IReadOnlyList<(string Role, string Content)>? seen = null;
        var formatter = ChatPromptFormatter.FromRoleContent(messages =>
        {
            seen = messages;
            return "<" + string.Join("|", messages.Select(m => m.Role + "=" + m.Content)) + ">";
        }, ["<"]);
        using var client = NewClient(new BehemothChatClientOptions { PromptFormatter = formatter });

        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 3, Instructions = "Be brief" });

        Assert.Equal([("system", "Be brief"), ("user", "Hello there")], seen);
        Assert.Equal(1 + "<system=Be brief|user=Hello there>".Length, response.Usage!.InputTokenCount);
        Assert.Contains("<", client.ToGenerationOptions(null).StopStrings);
    }

    [Fact]
    public void The_plain_formatter_writes_role_lines_and_ends_with_the_assistant_cue()
    {
        string prompt = ChatPromptFormatter.Plain.Format([new(ChatRole.System, "Be kind"), new(ChatRole.User, "Hi"), new(ChatRole.Assistant, "Hello"), new(ChatRole.User, "Bye")]);
        Assert.Equal("System: Be kind\nUser: Hi\nAssistant: Hello\nUser: Bye\nAssistant:", prompt);
        Assert.Equal(["\nUser:"], ChatPromptFormatter.Plain.StopStrings);
    }

    [Fact]
    public async Task A_disposed_client_refuses_requests()
    {
        var client = NewClient();
        client.Dispose();
        client.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.GetResponseAsync(Conversation));
    }

    [Fact]
    public async Task Generation_stats_count_tokens_and_name_the_stop_reason()
    {
        var stats = new GenerationStats();
        var text = new StringBuilder();
        await foreach (var piece in TextGenerator.GenerateAsync(package.Session, package.Tokenizer, "Hi", new GenerationOptions { MaxNewTokens = 4 }, stats))
            text.Append(piece);
        Assert.Equal((3, 4, GenerationStopReason.MaxTokens), (stats.PromptTokens, stats.GeneratedTokens, stats.StopReason));
        Assert.NotNull(stats.TimeToFirstToken);
        Assert.NotNull(stats.DecodeTokensPerSecond);

        // the first greedy token as a stop token: the generation ends at once, on it
        int first = package.Tokenizer.EncodeToIds(text.ToString())[0];
        var stopped = new GenerationStats();
        await foreach (var _ in TokenGenerator.GenerateAsync(package.Session, [1, 'H', 'i'], new GenerationOptions { MaxNewTokens = 4, StopTokens = [first] }, stopped)) { }
        Assert.Equal((0, GenerationStopReason.EndOfSequence), (stopped.GeneratedTokens, stopped.StopReason));
        Assert.Null(stopped.TimeToFirstToken);
    }
}
