using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Behemoth.Samples.GlassesCompanion;

namespace Behemoth.GlassesCompanion.Tests;

[Collection(GlassesCollection.Name)]
public sealed class EndpointTests(PackageFixture package)
{
    private static async Task<List<SseEvent>> ReadAllAsync(HttpResponseMessage response)
    {
        var events = new List<SseEvent>();
        await foreach (var e in SseClient.ReadEventsAsync(response)) events.Add(e);
        return events;
    }

    [Theory]
    [InlineData("translate", "Good morning, how are you?")]
    [InlineData("answer", "What is the capital of Italy?")]
    [InlineData("summary", "The train to Rome leaves at nine from platform four.")]
    public async Task Each_mode_streams_pieces_then_a_done_event_with_ttft_and_speed(string mode, string text)
    {
        await using var host = await GlassesHost.StartAsync(package);
        using var response = await SseClient.PostAsync(host.Client, new GenerateRequest(mode, text, null));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);

        var events = await ReadAllAsync(response);
        Assert.Equal("done", events[^1].Name);
        Assert.All(events[..^1], e => Assert.Equal("piece", e.Name));
        string streamed = string.Concat(events[..^1].Select(e => JsonSerializer.Deserialize(e.Data, GlassesJson.Default.PieceEvent)!.Text));
        Assert.False(string.IsNullOrWhiteSpace(streamed));
        Assert.DoesNotContain('\n', streamed);              // each mode answers on one line

        var done = JsonSerializer.Deserialize(events[^1].Data, GlassesJson.Default.DoneEvent)!;
        Assert.True(done.TtftMs > 0);
        Assert.True(done.GeneratedTokens > 0);
        Assert.True(done.GeneratedTokens <= Modes.DefaultMaxTokens(Enum.Parse<GlassesMode>(mode, ignoreCase: true)));
        Assert.True(done.GeneratedTokens < 2 || done.TokensPerSecond > 0);
        Assert.Equal("glasses", done.Profile);
        Assert.Equal(1, host.Monitor.Completed);
    }

    [Fact]
    public async Task Translation_is_greedy_so_the_same_phrase_streams_the_same_text()
    {
        await using var host = await GlassesHost.StartAsync(package);
        async Task<string> Translate()
        {
            using var response = await SseClient.PostAsync(host.Client, new GenerateRequest("translate", "Where is the train station?", null));
            var events = await ReadAllAsync(response);
            return string.Concat(events.Where(e => e.Name == "piece").Select(e => JsonSerializer.Deserialize(e.Data, GlassesJson.Default.PieceEvent)!.Text));
        }
        Assert.Equal(await Translate(), await Translate());
    }

    [Fact]
    public async Task The_glasses_profile_carved_at_first_start_is_loaded_and_info_says_so()
    {
        await using var host = await GlassesHost.StartAsync(package);
        var info = await host.Client.GetFromJsonAsync("/api/info", GlassesJson.Default.InfoBody);
        Assert.NotNull(info);
        Assert.Equal("glasses", info.Profile);
        Assert.Equal("glasses", info.RequestedProfile);
        Assert.False(info.PairingRequired);
        Assert.True(info.PeakRssBytes > 0);
        Assert.Equal(["translate", "answer", "summary"], info.Modes);
    }

    [Fact]
    public async Task A_profile_the_package_lacks_falls_back_to_full()
    {
        await using var host = await GlassesHost.StartAsync(package, "--Glasses:Profile", "watch");
        var info = await host.Client.GetFromJsonAsync("/api/info", GlassesJson.Default.InfoBody);
        Assert.Equal("full", info!.Profile);
        Assert.Equal("watch", info.RequestedProfile);
    }

    [Fact]
    public async Task A_profile_the_package_lacks_with_no_fallback_is_an_error_listing_the_profiles()
    {
        var e = await Assert.ThrowsAsync<GlassesConfigurationException>(() =>
            GlassesHost.StartAsync(package, "--Glasses:Profile", "watch", "--Glasses:FallbackProfile", ""));
        Assert.Contains("no profile 'watch'", e.Message);
        Assert.Contains("full, glasses, laptop, phone", e.Message);
    }

    [Fact]
    public async Task A_missing_package_without_auto_export_names_the_command_to_run()
    {
        using var temp = new Behemoth.Tests.TempDirectory();
        var e = await Assert.ThrowsAsync<GlassesConfigurationException>(() => GlassesApp.CreateAsync(
            ["--Glasses:Package", temp.File("nothing-here"), "--Glasses:AutoExport", "false", "--urls", "http://127.0.0.1:0"]));
        Assert.Contains("dotnet run --project src/Behemoth.Cli -c Release -- export models/behemoth-nano --out", e.Message);
    }

    [Fact]
    public async Task The_hud_page_and_its_assets_are_served_from_the_app()
    {
        await using var host = await GlassesHost.StartAsync(package);
        string page = await host.Client.GetStringAsync("/");
        Assert.Contains("<script src=\"hud.js\"></script>", page);
        Assert.DoesNotContain("http", page);                 // nothing from the network: it works offline
        Assert.Contains("api/generate", await host.Client.GetStringAsync("/hud.js"));
        Assert.Contains(".lens", await host.Client.GetStringAsync("/hud.css"));
    }

    [Fact]
    public async Task Text_over_the_limit_is_413_and_a_body_over_the_kestrel_limit_is_413()
    {
        await using var host = await GlassesHost.StartAsync(package, "--Glasses:MaxInputChars", "50");
        using var tooLong = await SseClient.PostAsync(host.Client, new GenerateRequest("translate", new string('a', 51), null));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLong.StatusCode);
        Assert.Contains("the limit is 50", await tooLong.Content.ReadAsStringAsync());

        string huge = "{\"mode\":\"translate\",\"text\":\"" + new string('b', (int)GlassesApp.MaxRequestBodyBytes) + "\"}";
        using var body = await host.Client.PostAsync("/api/generate", new StringContent(huge, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, body.StatusCode);
        Assert.Equal(0, host.Monitor.Completed + host.Monitor.Active);
    }

    [Theory]
    [InlineData("{\"mode\":\"sing\",\"text\":\"hello\"}", "not one of translate, answer, summary")]
    [InlineData("{\"mode\":\"answer\",\"text\":\"   \"}", "text is empty")]
    [InlineData("{\"mode\":\"answer\",\"text\":\"hi\",\"maxTokens\":0}", "maxTokens is 0")]
    [InlineData("mode=answer", "is not JSON")]
    public async Task Bad_requests_are_400_with_a_message(string body, string message)
    {
        await using var host = await GlassesHost.StartAsync(package);
        using var response = await host.Client.PostAsync("/api/generate", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(message, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_token_budget_of_a_request_is_capped_by_the_setting()
    {
        await using var host = await GlassesHost.StartAsync(package, "--Glasses:MaxNewTokens", "3", "--Glasses:StopAtNewline", "false");
        using var response = await SseClient.PostAsync(host.Client, new GenerateRequest("summary", "The train to Rome leaves at nine from platform four.", 500));
        var events = await ReadAllAsync(response);
        var done = JsonSerializer.Deserialize(events[^1].Data, GlassesJson.Default.DoneEvent)!;
        Assert.True(done.GeneratedTokens <= 3, $"{done.GeneratedTokens} tokens");
    }

    // A caption of ~1,800 tokens: its prefill takes a good part of a second on behemoth-nano, long enough to hold a
    // generation slot while the tests fill the queue or hang up.
    private static readonly string LongCaption = string.Concat(Enumerable.Repeat("la ", 1800));
    private static readonly string[] LongSettings = ["--Glasses:MaxInputChars", "8000"];

    [Fact]
    public async Task Beyond_the_running_generations_and_the_queue_requests_get_503()
    {
        await using var host = await GlassesHost.StartAsync(package, [.. LongSettings, "--Glasses:MaxConcurrentGenerations", "1", "--Glasses:QueueLimit", "1"]);
        // every generation waits at the gate, so the first one holds the only slot until the test opens it
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        host.Monitor.Hold = ct => gate.Task.WaitAsync(ct);
        using var running = await SseClient.PostAsync(host.Client, new GenerateRequest("summary", LongCaption, 4));
        Assert.Equal(HttpStatusCode.OK, running.StatusCode);
        Assert.Equal(1, host.Monitor.Active);   // the headers come after the slot is taken

        var queued = SseClient.PostAsync(host.Client, new GenerateRequest("translate", "Good morning", 4));
        await GlassesHost.WaitForAsync(() => host.Monitor.Queued == 1, "the second request to queue");

        using var rejected = await SseClient.PostAsync(host.Client, new GenerateRequest("translate", "Good evening", 4));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, rejected.StatusCode);
        Assert.Equal("1", rejected.Headers.RetryAfter?.ToString());
        Assert.Contains("busy", await rejected.Content.ReadAsStringAsync());

        // the running and the queued one both finish
        gate.SetResult();
        Assert.Equal("done", (await ReadAllAsync(running))[^1].Name);
        using var second = await queued;
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("done", (await ReadAllAsync(second))[^1].Name);
        Assert.Equal(1, host.Monitor.Rejected);
        Assert.Equal(2, host.Monitor.Completed);
    }

    [Fact]
    public async Task A_client_that_hangs_up_stops_its_generation()
    {
        await using var host = await GlassesHost.StartAsync(package, LongSettings);
        // the first generation stays running until its request is aborted, however fast this machine is
        int calls = 0;
        host.Monitor.Hold = ct => Interlocked.Increment(ref calls) == 1 ? Task.Delay(Timeout.Infinite, ct) : Task.CompletedTask;
        // no draining of an unread response on dispose: the connection closes, as when a browser tab goes away
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = host.Address };
        var response = await SseClient.PostAsync(client, new GenerateRequest("summary", LongCaption, 40));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, host.Monitor.Active);
        response.Dispose();

        await GlassesHost.WaitForAsync(() => host.Monitor.Active == 0, "the generation to stop");
        Assert.Equal(1, host.Monitor.Cancelled);
        Assert.Equal(0, host.Monitor.Completed);

        // the slot is free again
        using var next = await SseClient.PostAsync(host.Client, new GenerateRequest("translate", "Thank you", 8));
        Assert.Equal("done", (await ReadAllAsync(next))[^1].Name);
    }

    [Fact]
    public async Task The_load_tool_runs_against_a_live_server_without_failures()
    {
        await using var host = await GlassesHost.StartAsync(package, "--Glasses:MaxConcurrentGenerations", "1", "--Glasses:QueueLimit", "2");
        int exit = await LoadTool.RunAsync(["--clients", "6", "--requests", "2", "--url", host.Address.ToString().TrimEnd('/')]);
        Assert.Equal(0, exit);
        Assert.Equal(13, host.Monitor.Completed + host.Monitor.Rejected);   // 12 requests + the warm-up
    }
}
