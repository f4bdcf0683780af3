using Behemoth.Runtime;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Generation;
using Behemoth.Runtime.Hosting;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.Tokenizers;
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Disposal while native code runs: each of these killed the test host with a segfault before sessions and caches
/// guarded their native calls. Now the run is terminated and waited for, and the caller gets ObjectDisposedException.
/// Runs are caught at their start with <see cref="DecoderSession.RunStarting"/> instead of racing their speed.
/// </summary>
public sealed class SessionLifetimeTests(ChatPackageFixture package) : IClassFixture<ChatPackageFixture>
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(1);

    private DecoderSession Open() => DecoderSession.Open(package.PackageDirectory, "full", ExecutionProvider.Cpu);

    /// <summary>A long prompt, so that the prefill is still in native code when the test disposes.</summary>
    private static int[] LongPrompt(int length) => [1, .. Enumerable.Range(0, length - 1).Select(i => 3 + i * 7 % 500)];

    [Fact]
    public async Task Disposing_the_session_during_a_generation_s_run_ends_the_generation_with_ObjectDisposedException()
    {
        var session = Open();
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // the run waits at its start until Dispose has begun, so it is in flight when Dispose terminates it (a
        // generation on this tiny model can otherwise finish before the test thread gets to Dispose)
        session.RunStarting = () =>
        {
            running.TrySetResult();
            SpinWait.SpinUntil(() => session.IsDisposing, Limit);
        };
        var generation = Task.Run(async () =>
        {
            await foreach (int _ in TokenGenerator.GenerateAsync(session, LongPrompt(3000), new GenerationOptions { MaxNewTokens = 1000 })) { }
        });
        await running.Task.WaitAsync(Limit);

        session.Dispose();      // returns once the terminated run has left native code

        Assert.True(session.IsDisposed);
        var e = await Assert.ThrowsAsync<ObjectDisposedException>(() => generation.WaitAsync(Limit));
        Assert.Equal(nameof(DecoderSession), e.ObjectName);
    }

    [Fact]
    public async Task Disposing_the_session_between_tokens_ends_the_generation_with_ObjectDisposedException()
    {
        var session = Open();
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var disposed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int produced = 0;
        var generation = Task.Run(async () =>
        {
            var options = new GenerationOptions { MaxNewTokens = 4000, Temperature = 1, Seed = 3 };
            await foreach (int _ in TokenGenerator.GenerateAsync(session, [1, 17, 42], options))
                if (++produced == 1)
                {
                    first.TrySetResult();
                    await disposed.Task;        // the generation is open, holding its cache, between two runs
                }
        });
        await first.Task.WaitAsync(Limit);

        session.Dispose();
        disposed.SetResult();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => generation.WaitAsync(Limit));
        Assert.True(session.IsDisposed);
        Assert.Equal(1, produced);
    }

    [Fact]
    public void After_Dispose_Forward_and_NewCache_throw_ObjectDisposedException_and_Dispose_again_is_harmless()
    {
        var session = Open();
        var cache = session.NewCache();
        session.Forward([1, 2, 3], cache);
        session.Dispose();
        session.Dispose();

        Assert.True(session.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => session.Forward([4], cache));
        Assert.Throws<ObjectDisposedException>(() => session.NewCache());
        Assert.Equal(3, cache.Length);      // the cache is the caller's, untouched by the refused call
        Assert.Equal(512, session.Shape.VocabSize);     // metadata stays readable
        cache.Dispose();
    }

    [Fact]
    public async Task Concurrent_Dispose_calls_all_return_after_the_native_session_is_released()
    {
        var session = Open();
        var cache = session.NewCache();
        var running = new ManualResetEventSlim();
        session.RunStarting = running.Set;
        var forward = Task.Run(() => session.Forward(LongPrompt(3000), cache));
        Assert.True(running.Wait(Limit));

        var disposers = Enumerable.Range(0, 3).Select(_ => Task.Run(() => { session.Dispose(); return session.IsDisposed; })).ToArray();

        Assert.All(await Task.WhenAll(disposers).WaitAsync(Limit), Assert.True);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => forward.WaitAsync(Limit));
        cache.Dispose();
    }

    [Fact]
    public async Task Disposing_a_cache_during_a_Forward_on_it_throws_ObjectDisposedException_and_the_session_goes_on()
    {
        using var session = Open();
        var cache = session.NewCache();
        var running = new ManualResetEventSlim();
        session.RunStarting = running.Set;
        var forward = Task.Run(() => session.Forward(LongPrompt(3000), cache));
        Assert.True(running.Wait(Limit));

        cache.Dispose();
        cache.Dispose();

        Assert.True(cache.IsDisposed);
        Assert.Equal(0, cache.Bytes);
        var e = await Assert.ThrowsAsync<ObjectDisposedException>(() => forward.WaitAsync(Limit));
        Assert.Equal(nameof(KvCache), e.ObjectName);
        Assert.Throws<ObjectDisposedException>(() => session.Forward([1, 2], cache));
        session.RunStarting = null;
        using var fresh = session.NewCache();
        Assert.Equal(2 * 512, session.Forward([1, 2], fresh).Length);
        Assert.False(session.IsDisposed);
    }

    [Fact]
    public async Task A_second_Forward_on_a_cache_in_use_is_refused()
    {
        using var session = Open();
        using var cache = session.NewCache();
        using var release = new ManualResetEventSlim();
        var running = new ManualResetEventSlim();
        session.RunStarting = () => { running.Set(); release.Wait(); };
        var forward = Task.Run(() => session.Forward([1, 2, 3], cache));
        Assert.True(running.Wait(Limit));
        session.RunStarting = null;

        var e = Assert.Throws<InvalidOperationException>(() => session.Forward([4], cache));
        Assert.Contains("one call at a time", e.Message);
        release.Set();
        Assert.Equal(3 * 512, (await forward.WaitAsync(Limit)).Length);
        Assert.Equal(3, cache.Length);
    }

    [Fact]
    public async Task Disposing_the_container_while_a_chat_streams_ends_the_stream_with_ObjectDisposedException()
    {
        var services = new ServiceCollection();
        services.AddBehemothChatClient(package.PackageDirectory, new ModelOptions { Provider = ExecutionProvider.Cpu, Tokenizer = new CharTokenizer() });
        var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IChatClient>();
        var session = (await provider.GetBehemothModelAsync()).Session;
        var third = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int runs = 0, updates = 0;
        session.RunStarting = () =>
        {
            if (++runs != 3) return;
            // hold the third run (two tokens streamed) at its start until the container is disposing the session
            third.TrySetResult();
            Assert.True(SpinWait.SpinUntil(() => session.IsDisposing, Limit));
        };
        var stream = Task.Run(async () =>
        {
            var options = new ChatOptions { MaxOutputTokens = 4000, Temperature = 1, Seed = 3 };
            await foreach (var _ in client.GetStreamingResponseAsync("Hello there", options)) updates++;
        });
        await third.Task.WaitAsync(Limit);

        await provider.DisposeAsync();      // disposes the chat client, then the session: both wait for the run to end

        await Assert.ThrowsAsync<ObjectDisposedException>(() => stream.WaitAsync(Limit));
        Assert.True(session.IsDisposed);
        Assert.Equal(2, updates);
    }

    [Fact]
    public async Task Disposing_the_chat_client_ends_its_stream_and_leaves_the_session_open()
    {
        using var session = Open();
        var client = new BehemothChatClient(session, new CharTokenizer());
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var disposed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stream = Task.Run(async () =>
        {
            var options = new ChatOptions { MaxOutputTokens = 4000, Temperature = 1, Seed = 3 };
            await foreach (var _ in client.GetStreamingResponseAsync("Hello there", options))
                if (first.TrySetResult()) await disposed.Task;
        });
        await first.Task.WaitAsync(Limit);

        client.Dispose();
        disposed.SetResult();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => stream.WaitAsync(Limit));
        Assert.False(session.IsDisposed);
        using var cache = session.NewCache();
        Assert.Equal(512, session.Forward([1], cache).Length);
    }
}
