using Behemoth.Exporter.Export;
using Behemoth.Reference;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Tests;
using Behemoth.Package;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// The generation core: the generator's steps (append, next token, rewind, last logits) against the reference
/// engine run on the whole sequence, the last-row logits path, and <see cref="Model"/> on a one-layer behemoth-nano.
/// </summary>
public sealed class GeneratorTests
{
    private const double Tolerance = 1e-4;
    private static readonly int[] Prompt = [1, 17, 42, 99, 5, 230, 77];

    [Theory]
    [InlineData("mixtral")]      // GroupQueryAttention buffers: rewinding cuts them in place
    [InlineData("llama4")]       // 8-token chunks: a chunk's dropped keys make a deep rewind run the prefix again
    public void Last_logits_after_every_step_equal_the_reference_engine_on_the_whole_sequence(string name)
    {
        string dir = TestPaths.Golden(name);
        using var temp = new TempDirectory();
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions(), overwrite: false);
        using var session = DecoderSession.Open(temp.File("pkg"));
        using var reference = ReferenceModel.Load(dir);
        int vocab = session.Shape.VocabSize;
        ReadOnlySpan<float> Expected(IReadOnlyList<int> tokens) => reference.Forward([.. tokens]).AsSpan((tokens.Count - 1) * vocab, vocab);

        using var generator = new Generator(session, new GenerationOptions { MaxNewTokens = 12 }, stopTokenIds: []);
        generator.AppendTokens(Prompt);
        AssertClose(Expected(generator.Tokens), generator.GetLastLogits(), "after the prompt");
        while (!generator.IsDone) generator.GenerateNextToken();
        Assert.Equal(GenerationStopReason.MaxTokens, generator.StopReason);
        Assert.Equal(Prompt.Length + 12, generator.Tokens.Count);
        AssertClose(Expected(generator.Tokens), generator.GetLastLogits(), "after 12 new tokens");
        var first = generator.Tokens.ToArray();

        // a prompt run in pieces through the cache ends with the same logits (pieces of 3 cross chunk boundaries)
        using (var pieces = new Generator(session, new GenerationOptions { MaxNewTokens = 12 }, stopTokenIds: []) { PrefillChunkTokens = 3 })
        {
            pieces.AppendTokens(first);
            AssertClose(Expected(first), pieces.GetLastLogits(), "prefill in pieces of 3");
        }

        // a later turn: more tokens after the generated ones continue the same sequence
        generator.AppendTokens([3, 4, 5]);
        AssertClose(Expected(generator.Tokens), generator.GetLastLogits(), "after a second turn");

        // rewind into the generated part (shallow) and into the prompt (deep, across a chunk boundary), then go on
        foreach (int length in new[] { Prompt.Length + 9, Prompt.Length - 2 })
        {
            generator.RewindTo(length);
            Assert.Equal(first[..length], generator.Tokens);
            var expected = Expected(generator.Tokens);
            AssertClose(expected, generator.GetLastLogits(), $"rewound to {length}");
            Assert.Equal(Logits.ArgMax(expected), generator.GenerateNextToken());     // greedy: the reference engine's choice
            if (length >= Prompt.Length) Assert.Equal(first[length], generator.Tokens[^1]);   // the same token as the first time
        }
    }

    [Fact]
    public void The_last_row_path_equals_the_last_row_of_the_whole_output()
    {
        using var temp = new TempDirectory();
        PackageExporter.Export(TestPaths.Golden("qwen3_moe"), temp.File("pkg"), new ExportOptions(), overwrite: false);
        using var session = DecoderSession.Open(temp.File("pkg"));
        Assert.True(session.KeepsOnlyLastLogits, "the exported graph takes logits_to_keep");
        int vocab = session.Shape.VocabSize;
        using var a = session.NewCache();
        using var b = session.NewCache();
        float[] all = session.Forward(Prompt, a);
        Assert.Equal(Prompt.Length * vocab, all.Length);       // without logits_to_keep every row comes back (as genai sees it)
        var last = new float[vocab];
        session.ForwardLast(Prompt, b, last);
        AssertClose(all.AsSpan((Prompt.Length - 1) * vocab, vocab), last, "prefill");
        float[] next = session.Forward([9], a);
        session.ForwardLast([9], b, last);
        AssertClose(next, last, "decode step");
        Assert.Throws<ArgumentException>(() => session.ForwardLast([9], b, new float[vocab - 1]));
    }

    [Fact]
    public void A_stop_token_ends_generation_and_is_not_part_of_the_sequence()
    {
        using var temp = new TempDirectory();
        PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"), new ExportOptions(), overwrite: false);
        using var session = DecoderSession.Open(temp.File("pkg"));
        int[] greedy;
        using (var free = new Generator(session, new GenerationOptions { MaxNewTokens = 5 }, stopTokenIds: []))
        {
            free.AppendTokens(Prompt);
            while (!free.IsDone) free.GenerateNextToken();
            greedy = free.Tokens.Skip(Prompt.Length).ToArray();
        }
        int stop = greedy[2];
        int at = Array.IndexOf(greedy, stop);
        using var generator = new Generator(session, new GenerationOptions { MaxNewTokens = 5 }, stopTokenIds: [stop]);
        generator.AppendTokens(Prompt);
        var produced = new List<int>();
        while (!generator.IsDone) produced.Add(generator.GenerateNextToken());
        Assert.Equal(GenerationStopReason.EndOfSequence, generator.StopReason);
        Assert.Equal(greedy[..(at + 1)], produced);
        Assert.Equal([.. Prompt, .. greedy[..at]], generator.Tokens);
        Assert.Throws<InvalidOperationException>(() => generator.GenerateNextToken());
    }

    [Fact]
    public void A_model_refuses_a_tampered_tokenizer_file_naming_it()
    {
        const string file = "tokenizer.model";
        using var temp = new TempDirectory();
        string nano = Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano");
        PackageExporter.Export(nano, temp.File("pkg"), new ExportOptions { Layers = 1 }, overwrite: false);
        var manifest = PackageReader.ReadManifest(temp.File("pkg"));
        Assert.Contains(file, manifest.Tokenizer!.Files);
        string path = Path.Combine(temp.File("pkg"), file);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x20;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<PackageFormatException>(() => Model.Open(temp.File("pkg"), new ModelOptions { Provider = ExecutionProvider.Cpu }));
        Assert.Equal(path, e.Path);
        Assert.Contains(file, e.Message);
        Assert.Contains("altered", e.Message);
    }

    [Fact]
    public async Task A_model_opens_with_its_tokenizer_template_and_stop_ids_and_streams_the_text_generator_output()
    {
        using var temp = new TempDirectory();
        string nano = Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano");
        PackageExporter.Export(nano, temp.File("pkg"), new ExportOptions { Layers = 1, Quant = WeightType.Int4 }, overwrite: false);
        var stages = new List<ModelLoadStage>();
        using var model = await Model.OpenAsync(temp.File("pkg"), new ModelOptions { Provider = ExecutionProvider.Cpu }, new SyncProgress(stages.Add));
        Assert.Equal(Enum.GetValues<ModelLoadStage>(), stages);
        Assert.Equal(model.Session.Shape.BosTokenId, model.Tokenizer.BosTokenId);
        Assert.Equal(model.Session.Shape.EosTokenIds, model.Tokenizer.EosTokenIds);
        Assert.All(model.Session.Shape.EosTokenIds, id => Assert.Contains(id, model.StopTokenIds));

        var options = new GenerationOptions { MaxNewTokens = 24, StopStrings = ["\n"] };
        const string prompt = "English: Good morning, how are you?\nItalian:";
        string streamed = string.Concat(await model.GenerateAsync(prompt, options).ToListAsync());
        string classic = await TextGenerator.GenerateTextAsync(model.Session, model.Tokenizer.Inner, prompt, options);
        Assert.Equal(classic, streamed);
        Assert.False(string.IsNullOrWhiteSpace(streamed));
        Assert.DoesNotContain('\n', streamed);
    }

    private sealed class SyncProgress(Action<ModelLoadStage> report) : IProgress<ModelLoadStage>
    {
        public void Report(ModelLoadStage value) => report(value);
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max <= Tolerance, $"{what}: max |diff| {max:E3}");
    }
}
