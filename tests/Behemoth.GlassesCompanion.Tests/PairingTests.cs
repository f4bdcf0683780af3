using System.Net;
using Behemoth.Samples.GlassesCompanion;

namespace Behemoth.GlassesCompanion.Tests;

public sealed class PairingAddressTests
{
    [Theory]
    [InlineData("http://127.0.0.1:5080", true)]
    [InlineData("http://127.0.0.1:0", true)]
    [InlineData("http://127.8.0.1:5080", true)]
    [InlineData("http://localhost:5080", true)]
    [InlineData("http://[::1]:5080", true)]
    [InlineData("https://127.0.0.1:5443/", true)]
    [InlineData("http://0.0.0.0:5080", false)]
    [InlineData("http://[::]:5080", false)]
    [InlineData("http://*:5080", false)]
    [InlineData("http://+:5080", false)]
    [InlineData("http://192.168.1.20:5080", false)]
    [InlineData("http://glasses.local:5080", false)]
    public void Only_loopback_addresses_count_as_loopback(string url, bool loopback) => Assert.Equal(loopback, Pairing.IsLoopbackUrl(url));

    [Fact]
    public void Pairing_is_required_as_soon_as_one_address_is_not_loopback_and_the_token_is_random()
    {
        var a = Pairing.Create(new GlassesOptions(), ["http://127.0.0.1:5080", "http://0.0.0.0:5081"]);
        var b = Pairing.Create(new GlassesOptions(), ["http://0.0.0.0:5080"]);
        Assert.True(a.Required);
        Assert.Equal(32, a.Token.Length);
        Assert.NotEqual(a.Token, b.Token);
        Assert.False(Pairing.Create(new GlassesOptions(), ["http://127.0.0.1:5080"]).Required);
        Assert.True(Pairing.Create(new GlassesOptions { RequirePairing = true }, ["http://127.0.0.1:5080"]).Required);
        Assert.Throws<GlassesConfigurationException>(() => new GlassesOptions { PairingToken = "short" }.Validate());
    }
}

[Collection(GlassesCollection.Name)]
public sealed class PairingEndpointTests(PackageFixture package)
{
    [Fact]
    public async Task Listening_on_every_address_requires_the_token_printed_at_start()
    {
        // bound to 0.0.0.0 (port 0); the test itself only connects over 127.0.0.1
        await using var host = await GlassesHost.StartOnAsync(package, "http://0.0.0.0:0");
        Assert.True(host.Pairing.Required);

        using var info = await host.Client.GetAsync("/api/info");
        Assert.Equal(HttpStatusCode.Unauthorized, info.StatusCode);
        Assert.Contains("pairing token required", await info.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.Client.GetAsync("/")).StatusCode);
        using var generate = await SseClient.PostAsync(host.Client, new GenerateRequest("translate", "Hello", 4));
        Assert.Equal(HttpStatusCode.Unauthorized, generate.StatusCode);
        using var wrong = await SseClient.PostAsync(host.Client, new GenerateRequest("translate", "Hello", 4), token: new string('0', 32));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(0, host.Monitor.Completed);

        using var paired = await SseClient.PostAsync(host.Client, new GenerateRequest("translate", "Hello", 4), token: host.Pairing.Token);
        Assert.Equal(HttpStatusCode.OK, paired.StatusCode);
    }

    [Fact]
    public async Task The_page_opened_with_the_token_in_its_address_gets_a_cookie_for_its_assets()
    {
        await using var host = await GlassesHost.StartAsync(package, "--Glasses:RequirePairing", "true", "--Glasses:PairingToken", "glasses-test-token-0123456789");
        using var handler = new HttpClientHandler { UseCookies = true };
        using var browser = new HttpClient(handler) { BaseAddress = host.Address };
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/hud.js")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/?token=glasses-test-token-0123456789")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/hud.js")).StatusCode);
        using var bearer = new HttpRequestMessage(HttpMethod.Get, "/api/info");
        bearer.Headers.Authorization = new("Bearer", "glasses-test-token-0123456789");
        Assert.Equal(HttpStatusCode.OK, (await host.Client.SendAsync(bearer)).StatusCode);
    }
}
