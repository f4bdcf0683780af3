using System.Diagnostics.Metrics;
using Behemoth.Runtime;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Behemoth.Runtime.Generation;
using Behemoth.Runtime.Hosting;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.Tokenizers;
using Behemoth.Package;
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

namespace Behemoth.Exporter.Tests;

/// <summary>AddBehemothChatClient: the container opens the package and serves it as an IChatClient.</summary>
public sealed class ChatClientHostingTests(ChatPackageFixture package) : IClassFixture<ChatPackageFixture>
{
    private ModelOptions Cpu => new() { Provider = ExecutionProvider.Cpu, Tokenizer = package.Tokenizer };     // the golden checkpoints ship no tokenizer

    [Fact]
    public async Task The_container_resolves_an_IChatClient_that_answers_with_the_configured_defaults()
    {
        var services = new ServiceCollection();
        services.AddBehemothChatClient(package.PackageDirectory, Cpu, o => o.Generation = new GenerationOptions { MaxNewTokens = 4 });
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        var client = provider.GetRequiredService<IChatClient>();
        Assert.Equal("behemoth", client.GetService<ChatClientMetadata>()!.ProviderName);     // known before the model is open
        var model = provider.GetRequiredService<Model>();
        Assert.Same(provider.GetRequiredService<BehemothChatClient>(), client.GetService<BehemothChatClient>());
        Assert.Equal(ExecutionProvider.Cpu, model.Session.Provider);

        var response = await client.GetResponseAsync("Hello there");

        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(4, response.Usage!.OutputTokenCount);
        Assert.Equal("pkg/full", client.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Same(RuntimeMetrics.Shared, provider.GetRequiredService<RuntimeMetrics>());   // no IMeterFactory registered
    }

    [Fact]
    public async Task The_returned_builder_wraps_the_client_in_Microsoft_Extensions_AI_middleware()
    {
        var logs = new LogCollector();
        var services = new ServiceCollection();
        services.AddSingleton<ILoggerFactory>(logs);
        services.AddBehemothChatClient(package.PackageDirectory, Cpu)
            .UseFunctionInvocation()
            .UseLogging();
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        var client = provider.GetRequiredService<IChatClient>();
        var response = await client.GetResponseAsync("Hello there", new ChatOptions { MaxOutputTokens = 3 });

        Assert.IsType<FunctionInvokingChatClient>(client);          // the first Use is the outermost
        Assert.NotNull(client.GetService<LoggingChatClient>());
        Assert.Same(provider.GetRequiredService<BehemothChatClient>(), client.GetService<BehemothChatClient>());
        Assert.Equal(3, response.Usage!.OutputTokenCount);
        Assert.Contains(logs.Entries, e => e.Category == typeof(LoggingChatClient).FullName);
    }

    [Fact]
    public async Task Keyed_registrations_open_two_profiles_side_by_side()
    {
        using var temp = new Behemoth.Tests.TempDirectory();
        Export.PackageExporter.Export(Behemoth.Tests.TestPaths.Golden("mixtral"), temp.File("pkg"), new Export.ExportOptions
        {
            Profiles =
            [
                new("phone", "six experts per layer", new Dictionary<int, int[]> { [0] = [0, 1, 3, 4, 6, 7], [1] = [1, 2, 3, 5, 6, 7] }),
                new("glasses", "four experts per layer", new Dictionary<int, int[]> { [0] = [7, 1, 4, 0], [1] = [2, 5, 6, 3] }),
            ],
        }, overwrite: false);
        var services = new ServiceCollection();
        services.AddKeyedBehemothChatClient("glasses", temp.File("pkg"), Cpu with { Profile = "glasses" });
        services.AddKeyedBehemothChatClient("phone", temp.File("pkg"), Cpu with { Profile = "phone" }).UseLogging(NullLoggerFactory.Instance);
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        var glasses = provider.GetRequiredKeyedService<IChatClient>("glasses");
        var phone = provider.GetRequiredKeyedService<IChatClient>("phone");
        var fromGlasses = await glasses.GetResponseAsync("Hello there", new ChatOptions { MaxOutputTokens = 2 });
        var fromPhone = await phone.GetResponseAsync("Hello there", new ChatOptions { MaxOutputTokens = 2 });

        Assert.Equal("pkg/glasses", fromGlasses.ModelId);
        Assert.Equal("pkg/phone", fromPhone.ModelId);
        Assert.Equal("glasses", provider.GetRequiredKeyedService<Model>("glasses").Profile);
        Assert.Equal("phone", provider.GetRequiredKeyedService<Model>("phone").Profile);
        Assert.Null(provider.GetService<IChatClient>());        // nothing unkeyed was registered
        Assert.Same(provider.GetRequiredKeyedService<BehemothChatClient>("phone"), phone.GetService<BehemothChatClient>());
    }

    [Fact]
    public async Task The_model_opens_asynchronously_once_and_resolves_to_the_same_instance()
    {
        var services = new ServiceCollection();
        services.AddBehemothChatClient(package.PackageDirectory, Cpu);
        services.AddKeyedBehemothChatClient("other", package.PackageDirectory, Cpu);
        var provider = services.BuildServiceProvider();

        var loader = provider.GetRequiredService<BehemothModelLoader>();
        var first = provider.GetBehemothModelAsync();
        var second = provider.GetBehemothModelAsync();
        var model = await first;

        Assert.True(loader.IsLoaded);
        Assert.Same(model, await second);
        Assert.Same(model, provider.GetRequiredService<Model>());
        Assert.Same(model.Session, provider.GetRequiredService<BehemothChatClient>().Session);
        var other = await provider.GetBehemothModelAsync("other");
        Assert.NotSame(model, other);
        Assert.Same(other, provider.GetRequiredKeyedService<Model>("other"));

        await provider.DisposeAsync();

        Assert.True(model.Session.IsDisposed);
        Assert.True(other.Session.IsDisposed);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => loader.GetModelAsync());
    }

    [Fact]
    public async Task A_package_that_fails_to_open_fails_each_request_and_the_warm_up()
    {
        using var temp = new Behemoth.Tests.TempDirectory();
        var services = new ServiceCollection();
        services.AddBehemothChatClient(temp.File("missing"), Cpu);
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<IChatClient>();      // resolving does not open it

        await Assert.ThrowsAsync<Behemoth.Package.PackageFormatException>(() => client.GetResponseAsync("Hello there"));
        await Assert.ThrowsAsync<Behemoth.Package.PackageFormatException>(() => provider.GetBehemothModelAsync());
    }

    [Fact]
    public async Task A_package_with_its_own_tokenizer_chats_through_its_template()
    {
        // behemoth-nano: SentencePiece and no chat tokens, so the plain "Role: text" template, stopping at a new user turn
        using var temp = new Behemoth.Tests.TempDirectory();
        Export.PackageExporter.Export(Path.Combine(Behemoth.Tests.TestPaths.RepoRoot, "models", "behemoth-nano"), temp.File("pkg"),
            new Export.ExportOptions { Quant = WeightType.Int4 }, overwrite: false);
        var services = new ServiceCollection();
        services.AddBehemothChatClient(temp.File("pkg"), new ModelOptions { Provider = ExecutionProvider.Cpu });
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IChatClient>();

        var response = await client.GetResponseAsync("English: Good morning\nItalian:", new ChatOptions { MaxOutputTokens = 12, Temperature = 0 });

        Assert.False(string.IsNullOrWhiteSpace(response.Text));
        Assert.DoesNotContain("\nUser:", response.Text);
        Assert.True(response.Usage!.OutputTokenCount is > 0 and <= 12);
        var options = provider.GetRequiredService<BehemothChatClient>().ToGenerationOptions(null);
        Assert.Contains("\nUser:", options.StopStrings);
    }

    [Fact]
    public async Task The_container_s_logger_factory_and_meter_factory_are_used()
    {
        var logs = new LogCollector();
        using var meters = new TestMeterFactory();
        var services = new ServiceCollection();
        services.AddSingleton<ILoggerFactory>(logs);
        services.AddSingleton<IMeterFactory>(meters);
        services.AddBehemothChatClient(package.PackageDirectory, Cpu, o => o.ModelId = "golden-mixtral");
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<IChatClient>();
        var response = await client.GetResponseAsync("Hello there", new ChatOptions { MaxOutputTokens = 2 });

        Assert.Equal("golden-mixtral", response.ModelId);
        Assert.Same(meters, provider.GetRequiredService<RuntimeMetrics>().Meter.Scope);
        var opened = Assert.Single(logs.Entries, e => e.EventId.Name == "SessionOpened");
        Assert.Equal(typeof(DecoderSession).FullName, opened.Category);
        Assert.Equal("full", opened.State["Profile"]);
        Assert.Equal("cpu", opened.State["Provider"]);
        Assert.Equal(16, opened.State["Experts"]);
        long bytes = package.Session.Manifest.Profiles["full"].Files.Prepend(package.Session.Manifest.Profiles["full"].Graph).Distinct()
            .Sum(f => package.Session.Manifest.Files[f].Bytes);
        Assert.Equal(bytes, opened.State["Bytes"]);
        var generated = Assert.Single(logs.Entries, e => e.EventId.Name == "GenerationCompleted");
        Assert.Equal(typeof(BehemothChatClient).FullName, generated.Category);
    }
}
