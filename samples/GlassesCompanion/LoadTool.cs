using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// <c>load [--clients 50] [--requests 5] [--mode translate] [--url URL] [--timeout-s 600] [app settings…]</c>: clients
/// that each send requests one after another, all at once, on loopback. Without --url it starts the app in this
/// process on 127.0.0.1 (other arguments go to the app, e.g. <c>--Glasses:QueueLimit 8</c>). Reports 200s, 503s and
/// anything else (a failure), time to first token as the client sees it (request sent → first text, queueing
/// included) and as the server measured it (generation start → first token), and the server's peak RSS.
/// Exit code 0 when every request was a complete stream or an explicit 503.
/// </summary>
public static class LoadTool
{
    private static readonly string[] Phrases =
    [
        "Good morning, how are you?", "Where is the train station?", "The weather is nice today.", "I would like a coffee, please.",
        "What time does the museum open?", "My friend lives in Rome.", "Thank you for your help.", "The book is on the table.",
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        int clients = 50, requests = 5, timeoutS = 600;
        string mode = "translate";
        string? url = null;
        var appArgs = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new GlassesConfigurationException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--clients": clients = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--requests": requests = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--mode": mode = Value(); break;
                case "--url": url = Value(); break;
                case "--timeout-s": timeoutS = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                default: appArgs.Add(args[i]); break;
            }
        }
        if (clients < 1 || requests < 1) throw new GlassesConfigurationException("--clients and --requests must be at least 1");
        if (url is not null && !Pairing.IsLoopbackUrl(url)) throw new GlassesConfigurationException($"--url {url}: the load tool only targets loopback addresses");

        WebApplication? app = null;
        if (url is null)
        {
            app = await GlassesApp.CreateAsync(["--Logging:LogLevel:Default", "Warning", .. appArgs, "--urls", "http://127.0.0.1:0"]);
            await app.StartAsync();
            url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        }
        try
        {
            using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
            {
                BaseAddress = new Uri(url),
                Timeout = Timeout.InfiniteTimeSpan,
            };
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutS));
            await OneAsync(http, mode, Phrases[0], deadline.Token);       // warm-up, not counted

            var results = new Result[clients * requests];
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
            {
                for (int r = 0; r < requests; r++)
                    results[c * requests + r] = await OneAsync(http, mode, Phrases[(c + r) % Phrases.Length], deadline.Token);
            })));
            var wall = clock.Elapsed;
            var info = await http.GetFromJsonAsync("/api/info", GlassesJson.Default.InfoBody);

            var ok = results.Where(r => r.Status == HttpStatusCode.OK && r.Complete).ToArray();
            int busy = results.Count(r => r.Status == HttpStatusCode.ServiceUnavailable);
            var failed = results.Where(r => !(r.Status == HttpStatusCode.OK && r.Complete) && r.Status != HttpStatusCode.ServiceUnavailable).ToArray();
            var clientTtft = ok.Select(r => r.ClientTtftMs).Order().ToArray();
            var serverTtft = ok.Where(r => r.ServerTtftMs is not null).Select(r => r.ServerTtftMs!.Value).Order().ToArray();
            var speeds = ok.Where(r => r.TokensPerSecond is not null).Select(r => r.TokensPerSecond!.Value).ToArray();
            Console.WriteLine($"load: {clients} clients x {requests} requests, mode {mode}, {url}, profile {info?.Profile}, "
                + $"{info?.MaxConcurrentGenerations} generations at once, queue {info?.QueueLimit}");
            Console.WriteLine($"  requests: {results.Length}  ok: {ok.Length}  503: {busy}  failed: {failed.Length}  wall: {wall.TotalSeconds:F1} s");
            Console.WriteLine($"  TTFT client (sent -> first text, queue included): p50 {Pct(clientTtft, 50):F1} ms  p95 {Pct(clientTtft, 95):F1} ms");
            Console.WriteLine($"  TTFT server (generation start -> first token):   p50 {Pct(serverTtft, 50):F1} ms  p95 {Pct(serverTtft, 95):F1} ms");
            Console.WriteLine($"  decode: {(speeds.Length > 0 ? speeds.Average() : 0):F0} tokens/s per generation (mean)");
            Console.WriteLine($"  server peak RSS: {(info?.PeakRssBytes ?? 0) / (1024.0 * 1024):F0} MiB{(app is not null ? " (this process: the app and the clients)" : "")}");
            foreach (var f in failed.Take(5)) Console.WriteLine($"  failure: {(int)f.Status} {f.Error}");
            return failed.Length == 0 ? 0 : 2;
        }
        finally
        {
            if (app is not null)
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }
    }

    private sealed record Result(HttpStatusCode Status, bool Complete, double ClientTtftMs, double? ServerTtftMs, double? TokensPerSecond, string? Error);

    private static async Task<Result> OneAsync(HttpClient http, string mode, string text, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await SseClient.PostAsync(http, new GenerateRequest(mode, text, null), cancellationToken: cancellationToken);
            if (response.StatusCode != HttpStatusCode.OK)
                return new Result(response.StatusCode, false, 0, null, null, await response.Content.ReadAsStringAsync(cancellationToken));
            double? first = null;
            await foreach (var e in SseClient.ReadEventsAsync(response, cancellationToken))
            {
                first ??= clock.Elapsed.TotalMilliseconds;      // the first piece, or "done" when the answer is empty
                if (e.Name == "done")
                {
                    var done = JsonSerializer.Deserialize(e.Data, GlassesJson.Default.DoneEvent)!;
                    return new Result(HttpStatusCode.OK, true, first.Value, done.TtftMs, done.TokensPerSecond, null);
                }
                if (e.Name == "error") return new Result(HttpStatusCode.OK, false, 0, null, null, e.Data);
            }
            return new Result(HttpStatusCode.OK, false, 0, null, null, "the stream ended without a done event");
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
        {
            return new Result(0, false, 0, null, null, e.GetType().Name + ": " + e.Message);
        }
    }

    private static double Pct(double[] sorted, int p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100.0 * sorted.Length) - 1, 0, sorted.Length - 1)];
}
