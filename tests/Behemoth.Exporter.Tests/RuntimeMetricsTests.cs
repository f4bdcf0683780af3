using System.Diagnostics.Metrics;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Behemoth.Exporter.Tests;

/// <summary>The Behemoth.Runtime meter and the generation log line, as a chat client generates.</summary>
public sealed class RuntimeMetricsTests(ChatPackageFixture package) : IClassFixture<ChatPackageFixture>
{
    private static readonly ChatMessage[] Conversation = [new(ChatRole.User, "Hello there")];

    private sealed record Recorded(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags);

    /// <summary>Listens to the instruments of <paramref name="meter"/> only (other tests measure in parallel).</summary>
    private static (MeterListener Listener, List<Recorded> Measurements) Listen(Meter meter)
    {
        var measurements = new List<Recorded>();
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) => { if (instrument.Meter == meter) l.EnableMeasurementEvents(instrument); },
        };
        void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var copy = new Dictionary<string, object?>();
            foreach (var t in tags) copy[t.Key] = t.Value;
            lock (measurements) measurements.Add(new Recorded(instrument.Name, value, copy));
        }
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Add(i, v, t));
        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Add(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Add(i, v, t));
        listener.Start();
        return (listener, measurements);
    }

    [Fact]
    public async Task A_generation_records_time_to_first_token_tokens_per_second_and_token_counts_tagged_with_profile_and_provider()
    {
        using var meters = new TestMeterFactory();
        var metrics = new RuntimeMetrics(meters);
        Assert.Equal(RuntimeMetrics.MeterName, metrics.Meter.Name);
        Assert.Same(meters, metrics.Meter.Scope);
        var (listener, measurements) = Listen(metrics.Meter);
        using var _ = listener;
        using var client = new BehemothChatClient(package.Session, package.Tokenizer, metrics: metrics);

        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 6 });

        Assert.All(measurements, m => Assert.Equal("full", m.Tags[RuntimeMetrics.ProfileTag]));
        Assert.All(measurements, m => Assert.Equal("cpu", m.Tags[RuntimeMetrics.ProviderTag]));
        var ttft = Assert.Single(measurements, m => m.Instrument == "behemoth.generation.time_to_first_token");
        Assert.True(ttft.Value > 0);
        var speed = Assert.Single(measurements, m => m.Instrument == "behemoth.generation.tokens_per_second");
        Assert.True(speed.Value > 0);
        var tokens = measurements.Where(m => m.Instrument == "behemoth.generation.tokens").ToDictionary(m => (string)m.Tags[RuntimeMetrics.TokenTypeTag]!, m => m.Value);
        Assert.Equal(response.Usage!.InputTokenCount, (long)tokens["prompt"]);
        Assert.Equal(6, tokens["generated"]);
    }

    [Fact]
    public void Experts_loaded_reports_the_profiles_routed_experts_while_the_client_lives()
    {
        using var meters = new TestMeterFactory();
        var metrics = new RuntimeMetrics(meters);
        var (listener, measurements) = Listen(metrics.Meter);
        using var _ = listener;
        // golden Mixtral: 2 layers of 8 routed experts, all kept by the full profile
        int expected = package.Session.Manifest.Profiles["full"].Experts.Sum(l => l.ExpertIds.Count);
        Assert.Equal(16, expected);
        Assert.Equal(expected, RuntimeMetrics.CountRoutedExperts(package.Session.Manifest, "full"));

        using (new BehemothChatClient(package.Session, package.Tokenizer, metrics: metrics))
        {
            listener.RecordObservableInstruments();
            var experts = Assert.Single(measurements, m => m.Instrument == "behemoth.experts.loaded");
            Assert.Equal(expected, experts.Value);
            Assert.Equal("full", experts.Tags[RuntimeMetrics.ProfileTag]);
            Assert.Equal("cpu", experts.Tags[RuntimeMetrics.ProviderTag]);
        }
        measurements.Clear();
        listener.RecordObservableInstruments();
        Assert.DoesNotContain(measurements, m => m.Instrument == "behemoth.experts.loaded");
    }

    [Fact]
    public async Task A_generation_logs_one_line_with_token_counts_time_to_first_token_speed_and_stop_reason()
    {
        var logs = new LogCollector();
        using var client = new BehemothChatClient(package.Session, package.Tokenizer, logger: logs.CreateLogger("test"),
            metrics: new RuntimeMetrics(new TestMeterFactory()));

        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 5 });

        var entry = Assert.Single(logs.Entries);
        Assert.Equal(LogLevel.Information, entry.Level);
        Assert.Equal("GenerationCompleted", entry.EventId.Name);
        Assert.Equal((int)response.Usage!.InputTokenCount!, entry.State["PromptTokens"]);
        Assert.Equal(5, entry.State["GeneratedTokens"]);
        Assert.Equal("MaxTokens", entry.State["StopReason"]?.ToString());
        Assert.IsType<double>(entry.State["TimeToFirstTokenMilliseconds"]);
        Assert.IsType<double>(entry.State["TokensPerSecond"]);
        Assert.Contains("Generated 5 tokens", entry.Message);
        Assert.Contains("tokens/s", entry.Message);
    }

    [Fact]
    public async Task A_canceled_generation_logs_the_cancellation_instead()
    {
        var logs = new LogCollector();
        using var client = new BehemothChatClient(package.Session, package.Tokenizer, logger: logs.CreateLogger("test"),
            metrics: new RuntimeMetrics(new TestMeterFactory()));
        using var cts = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 1000, Temperature = 1, Seed = 1 }, cts.Token)) cts.Cancel();
        });
        Assert.Equal("GenerationCanceled", Assert.Single(logs.Entries).EventId.Name);
    }
}
