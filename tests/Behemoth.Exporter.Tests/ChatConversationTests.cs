using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Microsoft.Extensions.AI;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Conversations keep their KV cache: a follow-up turn runs only its new tokens and answers exactly as the same turn
/// run from scratch; a turn that diverges rewinds to the common prefix; the caches are bounded. And what the client
/// cannot honour is refused, not dropped.
/// </summary>
public sealed class ChatConversationTests(ChatPackageFixture package) : IClassFixture<ChatPackageFixture>
{
    private BehemothChatClient NewClient(BehemothChatClientOptions? options = null) =>
        new(package.Session, package.Tokenizer, options, metrics: new RuntimeMetrics(new TestMeterFactory()));

    private static ChatOptions Turn(string? conversation) => new() { MaxOutputTokens = 12, ConversationId = conversation };

    [Fact]
    public async Task A_follow_up_turn_runs_only_its_new_tokens_and_answers_as_from_scratch()
    {
        using var cached = NewClient();
        using var fresh = NewClient();
        var history = new List<ChatMessage> { new(ChatRole.User, "Hello there") };
        long previousPrompt = 0;
        for (int turn = 0; turn < 4; turn++)
        {
            var reply = await cached.GetResponseAsync(history, Turn("c1"));
            var expected = await fresh.GetResponseAsync(history, Turn(null));
            Assert.Equal(expected.Text, reply.Text);
            Assert.Equal(expected.Usage!.InputTokenCount, reply.Usage!.InputTokenCount);
            if (turn == 0) Assert.Equal(0, reply.Usage.CachedInputTokenCount);
            // at least the whole previous prompt comes from the cache (the reply too, where the template renders it as generated)
            else Assert.True(reply.Usage.CachedInputTokenCount >= previousPrompt,
                $"turn {turn}: {reply.Usage.CachedInputTokenCount} of {reply.Usage.InputTokenCount} prompt tokens from the cache; the previous prompt had {previousPrompt}");
            previousPrompt = reply.Usage.InputTokenCount!.Value;
            Assert.Equal(0, expected.Usage.CachedInputTokenCount);
            history.Add(reply.Messages[0]);
            history.Add(new ChatMessage(ChatRole.User, $"And then {turn}?"));
        }
        Assert.Equal(1, cached.CachedConversations);
        Assert.Equal(0, fresh.CachedConversations);
    }

    [Fact]
    public async Task A_turn_that_changes_an_earlier_message_rewinds_to_the_common_prefix()
    {
        using var client = NewClient();
        using var fresh = NewClient();
        List<ChatMessage> first = [new(ChatRole.User, "Hello there, how are you")];
        var reply = await client.GetResponseAsync(first, Turn("c"));
        List<ChatMessage> edited = [new(ChatRole.User, "Hello there, who are you"), ];
        var again = await client.GetResponseAsync(edited, Turn("c"));
        Assert.Equal((await fresh.GetResponseAsync(edited, Turn(null))).Text, again.Text);
        Assert.InRange(again.Usage!.CachedInputTokenCount!.Value, 1, again.Usage.InputTokenCount!.Value - 1);
        _ = reply;
    }

    [Fact]
    public async Task Conversations_are_bounded_least_recently_used_first()
    {
        using var client = NewClient(new BehemothChatClientOptions { MaxConversations = 2 });
        List<ChatMessage> hello = [new(ChatRole.User, "Hello there")];
        foreach (var id in new[] { "a", "b", "c" }) await client.GetResponseAsync(hello, Turn(id));
        Assert.Equal(2, client.CachedConversations);
        Assert.Equal(0, (await client.GetResponseAsync(hello, Turn("a"))).Usage!.CachedInputTokenCount);     // "a" was evicted
        Assert.True((await client.GetResponseAsync(hello, Turn("c"))).Usage!.CachedInputTokenCount > 0);

        using var tiny = NewClient(new BehemothChatClientOptions { MaxConversationCacheBytes = 1 });
        await tiny.GetResponseAsync(hello, Turn("a"));
        Assert.Equal(0, tiny.CachedConversations);        // one conversation's cache is already over the byte cap
    }

    [Fact]
    public async Task A_saved_conversation_restores_in_another_client_and_carries_on_from_its_cache()
    {
        using var temp = new Behemoth.Tests.TempDirectory();
        using var first = NewClient();
        var history = new List<ChatMessage> { new(ChatRole.User, "Hello there") };
        history.Add((await first.GetResponseAsync(history, Turn("c"))).Messages[0]);
        history.Add(new ChatMessage(ChatRole.User, "And then?"));
        await first.SaveConversationAsync("c", temp.File("c.state"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => first.SaveConversationAsync("never-ran", temp.File("x.state")));

        using var second = NewClient();       // as after the app was killed: nothing cached
        await second.RestoreConversationAsync("c", temp.File("c.state"));
        var restored = await second.GetResponseAsync(history, Turn("c"));
        var original = await first.GetResponseAsync(history, Turn("c"));
        Assert.Equal(original.Text, restored.Text);
        Assert.Equal(original.Usage!.CachedInputTokenCount, restored.Usage!.CachedInputTokenCount);
        Assert.True(restored.Usage.CachedInputTokenCount > 0);

        File.WriteAllBytes(temp.File("c.state"), File.ReadAllBytes(temp.File("c.state"))[..100]);
        await Assert.ThrowsAsync<Behemoth.Runtime.Generation.SessionStateException>(() => second.RestoreConversationAsync("d", temp.File("c.state")));
    }

    public static TheoryData<string> Unsupported() => ["tools", "json", "frequency", "presence", "model", "tool message", "function call"];

    [Theory]
    [MemberData(nameof(Unsupported))]
    public async Task What_the_client_cannot_honour_is_refused_naming_it(string what)
    {
        using var client = NewClient();
        List<ChatMessage> messages = [new(ChatRole.User, "Hello there")];
        var options = new ChatOptions { MaxOutputTokens = 4 };
        string expected = what;
        switch (what)
        {
            case "tools": options.Tools = [AIFunctionFactory.Create(() => "12:00", "clock")]; expected = "ChatOptions.Tools"; break;
            case "json": options.ResponseFormat = ChatResponseFormat.Json; expected = "ResponseFormat"; break;
            case "frequency": options.FrequencyPenalty = 0.5f; expected = "FrequencyPenalty"; break;
            case "presence": options.PresencePenalty = 0.5f; expected = "PresencePenalty"; break;
            case "model": options.ModelId = "another-model"; expected = "another-model"; break;
            case "tool message": messages.Add(new ChatMessage(ChatRole.Tool, "12:00")); expected = "tool-role"; break;
            case "function call": messages.Add(new ChatMessage(ChatRole.Assistant, [new FunctionCallContent("1", "clock")])); expected = "FunctionCallContent"; break;
        }
        var e = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(messages, options));
        Assert.Contains(expected, e.Message);
        // the client is free for the next request
        Assert.NotNull(await client.GetResponseAsync([new(ChatRole.User, "Hello there")], new ChatOptions { MaxOutputTokens = 2 }));
    }
}
