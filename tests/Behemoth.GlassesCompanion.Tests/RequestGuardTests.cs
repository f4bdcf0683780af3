using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using Behemoth.Samples.GlassesCompanion;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Behemoth.GlassesCompanion.Tests;

public sealed class RequestGuardUnitTests
{
    [Theory]
    [InlineData("localhost", true)]
    [InlineData("LOCALHOST:5080", true)]
    [InlineData("127.0.0.1:5080", true)]
    [InlineData("127.9.9.9", true)]
    [InlineData("[::1]:5080", true)]
    [InlineData("evil.example", false)]
    [InlineData("evil.example:5080", false)]
    [InlineData("localhost.evil.example", false)]
    [InlineData("192.168.1.20:5080", false)]
    [InlineData("", false)]
    public void On_loopback_only_loopback_hosts_are_served(string host, bool allowed) =>
        Assert.Equal(allowed, RequestGuard.Create(new GlassesOptions(), ["http://127.0.0.1:5080"]).IsAllowedHost(new HostString(host)));

    [Fact]
    public void A_bound_address_and_configured_names_are_served_too()
    {
        var guard = RequestGuard.Create(new GlassesOptions { AllowedHosts = ["glasses-hub.lan", "proxy.lan:8443", "[fd00::7]"] }, ["http://192.168.1.20:5080"]);
        Assert.True(guard.IsAllowedHost(new HostString("proxy.lan")));
        Assert.True(guard.IsAllowedHost(new HostString("[fd00::7]:5080")));
        Assert.Throws<GlassesConfigurationException>(() => new GlassesOptions { AllowedHosts = ["*"] }.Validate());
        Assert.Throws<GlassesConfigurationException>(() => new GlassesOptions { AllowedHosts = ["http://x.lan/"] }.Validate());
        Assert.True(guard.IsAllowedHost(new HostString("192.168.1.20:5080")));
        Assert.True(guard.IsAllowedHost(new HostString("Glasses-Hub.lan:5080")));
        Assert.False(guard.IsAllowedHost(new HostString("192.168.1.21:5080")));
        Assert.False(guard.IsAllowedHost(new HostString("evil.example")));
    }

    [Fact]
    public void Bound_to_every_address_this_machines_own_addresses_and_name_are_served()
    {
        var guard = RequestGuard.Create(new GlassesOptions(), ["http://0.0.0.0:5080"]);
        Assert.True(guard.IsAllowedHost(new HostString(Dns.GetHostName())));
        foreach (var address in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                     .SelectMany(n => n.GetIPProperties().UnicastAddresses).Where(a => a.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork))
            Assert.True(guard.IsAllowedHost(new HostString(address.Address.ToString(), 5080)), address.Address.ToString());
        Assert.False(guard.IsAllowedHost(new HostString("evil.example")));
    }

    [Theory]
    [InlineData("application/json", true)]
    [InlineData("application/json; charset=utf-8", true)]
    [InlineData("Application/JSON; charset=UTF-8", true)]
    [InlineData("application/json; charset=utf-16", false)]
    [InlineData("text/plain", false)]
    [InlineData("text/plain; charset=utf-8", false)]
    [InlineData("application/x-www-form-urlencoded", false)]
    [InlineData("multipart/form-data; boundary=x", false)]
    [InlineData("application/json-patch+json", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void Only_a_json_body_is_accepted(string? contentType, bool json) => Assert.Equal(json, RequestGuard.IsJson(contentType));

    [Theory]
    [InlineData("GET http://127.0.0.1:5080/?token=abc123 - - -", "GET http://127.0.0.1:5080/?token=[redacted] - - -")]
    [InlineData("/hud.js?x=1&token=abc&y=2", "/hud.js?x=1&token=[redacted]&y=2")]
    [InlineData("the secret-token-0123456789 itself", "the [redacted] itself")]
    [InlineData("nothing to hide", "nothing to hide")]
    public void Redaction_removes_the_token_and_token_parameters(string text, string redacted) =>
        Assert.Equal(redacted, LogRedaction.Redact(text, "secret-token-0123456789"));
}

[Collection(GlassesCollection.Name)]
public sealed class RequestGuardEndpointTests(PackageFixture package)
{
    private static HttpRequestMessage Get(string path, string host)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Host = host;
        return request;
    }

    [Fact]
    public async Task A_dns_rebinding_page_with_another_host_is_refused_with_421_even_without_pairing()
    {
        await using var host = await GlassesHost.StartAsync(package);
        Assert.False(host.Pairing.Required);
        int port = host.Address.Port;
        foreach (string name in new[] { "evil.example", $"evil.example:{port}", $"localhost.evil.example:{port}" })
        {
            using var refused = await host.Client.SendAsync(Get("/api/info", name));
            Assert.Equal(HttpStatusCode.MisdirectedRequest, refused.StatusCode);
            Assert.Contains("not an address this app serves", await refused.Content.ReadAsStringAsync());
            using var post = Get("/api/generate", name);
            post.Method = HttpMethod.Post;
            post.Content = new StringContent("""{"mode": "translate", "text": "Hello"}""", Encoding.UTF8, "application/json");
            Assert.Equal(HttpStatusCode.MisdirectedRequest, (await host.Client.SendAsync(post)).StatusCode);
        }
        foreach (string name in new[] { $"127.0.0.1:{port}", $"localhost:{port}", $"[::1]:{port}" })
            Assert.Equal(HttpStatusCode.OK, (await host.Client.SendAsync(Get("/api/info", name))).StatusCode);
        Assert.Equal(0, host.Monitor.Completed);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData(null)]
    public async Task A_post_body_that_is_not_application_json_is_refused_with_415(string? contentType)
    {
        await using var host = await GlassesHost.StartAsync(package);
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes("""{"mode": "translate", "text": "Hello", "maxTokens": 2}"""));
        if (contentType is not null) content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var refused = await host.Client.PostAsync("/api/generate", content);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);
        Assert.Contains("application/json", await refused.Content.ReadAsStringAsync());
        Assert.Equal(0, host.Monitor.Completed);

        using var json = await host.Client.PostAsync("/api/generate",
            new StringContent("""{"mode": "translate", "text": "Hello", "maxTokens": 2}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        await json.Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task No_log_entry_holds_the_token_even_with_request_logs_at_information_level()
    {
        const string Token = "glasses-log-token-0123456789abcdef";
        var capture = new CapturingLoggerProvider();
        // every level of every category, for this provider only (a rule naming the provider wins over the settings' ones),
        // so the console of the test host stays quiet
        await using var host = await GlassesHost.StartAsync(package, b =>
        {
            b.Logging.AddFilter<CapturingLoggerProvider>(null, LogLevel.Trace);      // (by its own name: the redaction wraps the factory, not the providers)
            b.Logging.AddProvider(capture);
        }, "--Glasses:RequirePairing", "true", "--Glasses:PairingToken", Token);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync($"/?token={Token}")).StatusCode);
        using var header = new HttpRequestMessage(HttpMethod.Get, "/api/info?token=" + Token);
        header.Headers.Add(Pairing.Header, Token);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.SendAsync(header)).StatusCode);
        using (var fresh = new HttpClient { BaseAddress = host.Address })       // no cookie: a wrong token is refused, and not logged either
            Assert.Equal(HttpStatusCode.Unauthorized, (await fresh.GetAsync("/api/info?token=wrong-" + Token)).StatusCode);

        var entries = capture.Entries;
        // the request log is on (so the test could see a leak), and it has the query string redacted
        Assert.Contains(entries, e => e.Contains("Request starting", StringComparison.Ordinal) && e.Contains("token=[redacted]", StringComparison.Ordinal));
        Assert.DoesNotContain(entries, e => e.Contains(Token, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_app_prints_the_token_alone_on_stdout_and_its_logs_on_stderr_never_hold_it()
    {
        const string Token = "glasses-stdout-token-0123456789ab";
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "GlassesCompanion.dll"), "--urls", "http://127.0.0.1:0",
            "--Glasses:Package", package.Package, "--Glasses:Provider", "cpu", "--Glasses:AutoExport", "false",
            "--Glasses:RequirePairing", "true", "--Glasses:PairingToken", Token,
            "--Logging:LogLevel:Default", "Information", "--Logging:LogLevel:Microsoft.AspNetCore", "Information",
        }) start.ArgumentList.Add(a);
        using var app = Process.Start(start)!;
        var stderr = app.StandardError.ReadToEndAsync();
        var stdout = new StringBuilder();
        try
        {
            string? port = null;
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            while (await app.StandardOutput.ReadLineAsync(deadline.Token) is { } line)
            {
                stdout.AppendLine(line);
                if (Regex.Match(line, @"HUD: http://127\.0\.0\.1:(\d+)/") is { Success: true } m) port = m.Groups[1].Value;
                if (line == Token) break;
            }
            Assert.True(port is not null, "no HUD address on stdout: " + stdout);
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/?token={Token}")).StatusCode);
        }
        finally
        {
            using (var term = Process.Start("kill", ["-TERM", app.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) term.WaitForExit();
            if (!app.WaitForExit(60_000)) app.Kill();
        }
        stdout.Append(await app.StandardOutput.ReadToEndAsync());
        string logs = await stderr;
        Assert.Contains(Environment.NewLine + Token + Environment.NewLine, stdout.ToString());     // alone on its line
        Assert.Contains("Request starting", logs);                                                   // request logs were on, on stderr
        Assert.Contains("token=[redacted]", logs);
        Assert.DoesNotContain(Token, logs);
        Assert.DoesNotContain("Request starting", stdout.ToString());                                // no log line on stdout
    }
}

/// <summary>Every log entry formatted, with its structured values, as any sink could write it.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly List<string> _entries = [];

    public IReadOnlyList<string> Entries
    {
        get { lock (_entries) return _entries.ToArray(); }
    }

    public ILogger CreateLogger(string categoryName) => new Capture(this, categoryName);

    public void Dispose() { }

    private sealed class Capture(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var text = new StringBuilder($"{category}: {formatter(state, exception)}");
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
                foreach (var (key, value) in values) text.Append($" | {key}={value}");
            lock (owner._entries) owner._entries.Add(text.ToString());
        }
    }
}
