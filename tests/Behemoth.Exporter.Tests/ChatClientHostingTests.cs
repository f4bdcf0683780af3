using System.Diagnostics.Metrics;
using Behemoth.Runtime;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Behemoth.Runtime.Generation;
using Behemoth.Runtime.Hosting;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML.Tokenizers;
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

namespace Behemoth.Exporter.Tests;

/// <summary>AddBehemothChatClient: the container opens the package and serves it as an IChatClient.</summary>
public sealed class ChatClientHostingTests(ChatPackageFixture package) : IClassFixture<ChatPackageFixture>
{
    [Fact]
    public async Task The_container_resolves_an_IChatClient_that_answers_with_the_configured_defaults()
    {
        var services = new ServiceCollection();
        services.AddSingleton<Tokenizer>(new CharTokenizer());      // the golden checkpoints ship no tokenizer
        services.AddBehemothChatClient(package.PackageDirectory, "full", ExecutionProvider.Cpu,
            o => o.Generation = new GenerationOptions { MaxNewTokens = 4 });
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        var client = provider.GetRequiredService<IChatClient>();
        Assert.Same(provider.GetRequiredService<BehemothChatClient>(), client);
        var session = provider.GetRequiredService<DecoderSession>();
        Assert.Equal(ExecutionProvider.Cpu, session.Provider);

        var response = await client.GetResponseAsync("Hello there");

        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(4, response.Usage!.OutputTokenCount);
        Assert.Equal("behemoth", client.GetService<ChatClientMetadata>()!.ProviderName);
        Assert.Same(RuntimeMetrics.Shared, provider.GetRequiredService<RuntimeMetrics>());   // no IMeterFactory registered
    }

    [Fact]
    public async Task A_package_with_its_own_tokenizer_chats_through_its_template()
    {
        // behemoth-nano: SentencePiece and no chat tokens, so the plain "Role: text" template, stopping at a new user turn
        using var temp = new Behemoth.Tests.TempDirectory();
        Export.PackageExporter.Export(Path.Combine(Behemoth.Tests.TestPaths.RepoRoot, "models", "behemoth-nano"), temp.File("pkg"),
            new Export.ExportOptions { Quant = Export.QuantKind.Int4 }, overwrite: false);
        var services = new ServiceCollection();
        services.AddBehemothChatClient(temp.File("pkg"), provider: ExecutionProvider.Cpu);
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
        services.AddSingleton<Tokenizer>(new CharTokenizer());
        services.AddBehemothChatClient(package.PackageDirectory, provider: ExecutionProvider.Cpu, configure: o => o.ModelId = "golden-mixtral");
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
