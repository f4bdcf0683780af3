using Behemoth.Exporter.Export;
using Behemoth.Reference;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>Generation through the KV cache against the reference engine, and the sampling contract.</summary>
public sealed class GenerationTests
{
    [Theory]
    [InlineData("mixtral")]
    [InlineData("qwen3_moe")]
    [InlineData("llama4")]        // 8-token chunks: decoding crosses chunk boundaries
    [InlineData("behemoth-nano")] // the bundled demo model
    public async Task Greedy_tokens_equal_the_reference_engine_greedy_tokens(string model)
    {
        string dir = model == "behemoth-nano" ? Path.Combine(TestPaths.RepoRoot, "models", model) : TestPaths.Golden(model);
        using var temp = new TempDirectory();
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions(), overwrite: false);
        using var session = DecoderSession.Open(temp.File("pkg"));
        int[] prompt = [1, 17, 42, 99, 5];
        var options = new GenerationOptions { MaxNewTokens = 20, StopTokens = [] };
        var onnx = new List<int>();
        await foreach (int t in TokenGenerator.GenerateAsync(session, prompt, options with { StopTokens = [] })) onnx.Add(t);

        using var reference = ReferenceModel.Load(dir);
        var sequence = prompt.ToList();
        var expected = new List<int>();
        int vocab = reference.Config.VocabSize;
        var eos = session.Shape.EosTokenIds.ToHashSet();
        for (int i = 0; i < 20; i++)
        {
            float[] logits = reference.Forward(sequence.ToArray());
            int next = ArgMax(logits.AsSpan((sequence.Count - 1) * vocab, vocab));
            if (eos.Contains(next)) break;
            expected.Add(next);
            sequence.Add(next);
        }
        Assert.Equal(expected, onnx);
    }

    [Fact]
    public async Task Seeded_sampling_repeats_and_other_seeds_differ()
    {
        using var temp = new TempDirectory();
        PackageExporter.Export(TestPaths.Golden("olmoe"), temp.File("pkg"), new ExportOptions(), overwrite: false);
        using var session = DecoderSession.Open(temp.File("pkg"));
        async Task<List<int>> Sample(int seed)
        {
            var options = new GenerationOptions { MaxNewTokens = 24, Temperature = 1.5f, TopK = 50, TopP = 0.95f, Seed = seed };
            var tokens = new List<int>();
            await foreach (int t in TokenGenerator.GenerateAsync(session, [1, 2, 3], options)) tokens.Add(t);
            return tokens;
        }
        var first = await Sample(7);
        Assert.Equal(first, await Sample(7));
        Assert.NotEqual(first, await Sample(8));
    }

    [Fact]
    public async Task Cancellation_stops_generation()
    {
        using var temp = new TempDirectory();
        PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"), new ExportOptions(), overwrite: false);
        using var session = DecoderSession.Open(temp.File("pkg"));
        using var cts = new CancellationTokenSource();
        var got = new List<int>();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (int t in TokenGenerator.GenerateAsync(session, [1, 2], new GenerationOptions { MaxNewTokens = 1000, Temperature = 1, Seed = 1 }, cts.Token))
            {
                got.Add(t);
                if (got.Count == 3) cts.Cancel();
            }
        });
        Assert.Equal(3, got.Count);
    }

    [Fact]
    public void Long_prompts_are_refused_or_truncated_as_asked()
    {
        var options = new GenerationOptions { MaxNewTokens = 4 };
        int[] prompt = Enumerable.Range(1, 20).ToArray();
        var e = Assert.Throws<Behemoth.Package.PromptTooLongException>(() => TokenGenerator.FitPrompt(prompt, options, 16));
        Assert.Contains("20 tokens", e.Message);
        Assert.Equal((20, 12, 16, 4), (e.PromptTokens, e.Room, e.ContextLength, e.MaxNewTokens));
        int[] kept = TokenGenerator.FitPrompt(prompt, options with { Overflow = PromptOverflow.TruncateStart }, 16);
        Assert.Equal([1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], kept);
    }

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
