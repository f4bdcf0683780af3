using Behemoth.Samples.GlassesCompanion;
using Behemoth.Tests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Behemoth.GlassesCompanion.Tests;

/// <summary>
/// One int4 package of behemoth-nano for all the tests, made the way a user gets it: the first app start finds no
/// package and runs <c>behemoth export</c> (the CLI built next to the tests) as a child process.
/// </summary>
public sealed class PackageFixture : IAsyncLifetime
{
    private readonly TempDirectory _temp = new();

    public string Package => Path.Combine(_temp.Path, "nano-int4");

    public static string Cli => Path.Combine(AppContext.BaseDirectory, "behemoth.dll");

    public async Task InitializeAsync()
    {
        await using var first = await GlassesHost.StartAsync(this, "--Glasses:Cli", Cli);
        if (!File.Exists(Path.Combine(Package, "manifest.json")))
            throw new InvalidOperationException($"the app started without exporting {Package}");
    }

    public Task DisposeAsync()
    {
        _temp.Dispose();
        return Task.CompletedTask;
    }
}

[CollectionDefinition(Name)]
public sealed class GlassesCollection : ICollectionFixture<PackageFixture>
{
    // one collection: the tests share the package and run one after another (timing-sensitive queue tests included)
    public const string Name = "glasses";
}

/// <summary>The app on a real Kestrel socket (port 0 on the address given), with an HttpClient to it over loopback.</summary>
public sealed class GlassesHost : IAsyncDisposable
{
    private GlassesHost(WebApplication app, Uri address)
    {
        App = app;
        Address = address;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
    }

    public WebApplication App { get; }
    public Uri Address { get; }
    public HttpClient Client { get; }
    public GenerationMonitor Monitor => App.Services.GetRequiredService<GenerationMonitor>();
    public Pairing Pairing => App.Services.GetRequiredService<Pairing>();

    /// <summary>Starts the app on <paramref name="listen"/> (default 127.0.0.1, port 0) with the package and extra settings.</summary>
    public static Task<GlassesHost> StartAsync(PackageFixture package, params string[] settings) =>
        StartOnAsync(package, "http://127.0.0.1:0", settings);

    /// <summary>As above, with <paramref name="configure"/> run on the builder after the tests' own settings (logging at Warning).</summary>
    public static Task<GlassesHost> StartAsync(PackageFixture package, Action<WebApplicationBuilder> configure, params string[] settings) =>
        StartOnAsync(package, "http://127.0.0.1:0", configure, settings);

    public static Task<GlassesHost> StartOnAsync(PackageFixture package, string listen, params string[] settings) =>
        StartOnAsync(package, listen, null, settings);

    private static async Task<GlassesHost> StartOnAsync(PackageFixture package, string listen, Action<WebApplicationBuilder>? configure, string[] settings)
    {
        var app = await GlassesApp.CreateAsync(["--Glasses:Package", package.Package, "--Glasses:Provider", "cpu", .. settings], b =>
        {
            b.WebHost.UseUrls(listen);
            b.Logging.SetMinimumLevel(LogLevel.Warning);
            configure?.Invoke(b);
        });
        await app.StartAsync();
        var bound = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        // whatever the app listens on, the tests talk to it over loopback only
        return new GlassesHost(app, new UriBuilder(bound) { Host = "127.0.0.1" }.Uri);
    }

    /// <summary>
    /// Polls <paramref name="condition"/> until it holds. The limit only turns a hang into a failure: every condition
    /// waited on is reached by events the test caused, not by how fast the machine runs.
    /// </summary>
    public static async Task WaitForAsync(Func<bool> condition, string what, double seconds = 300)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > until) throw new TimeoutException("timed out waiting for " + what);
            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
