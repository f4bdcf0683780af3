using System.Runtime.InteropServices;
using System.Text.Json;
using Behemoth.Exporter.Export;
using Behemoth.Runtime;
using Behemoth.Tests;
using Behemoth.Package;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Exported fp32 packages run by ONNX Runtime against the float64 golden logits (tests/fixtures/golden and the
/// variant fixtures; the shared golden sets too when that folder is present): the whole sequence at once, and one token at a time through the KV cache, for both MoE forms.
/// </summary>
public sealed class OnnxParityTests
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string, MoeForm> Models()
    {
        var data = new TheoryData<string, MoeForm>();
        var dirs = new[] { "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama4" }.Select(TestPaths.Golden)
            .Concat(Directory.GetDirectories(Path.Combine(TestPaths.RepoRoot, "tests", "fixtures", "variants")).Order());
        foreach (var dir in dirs)
            foreach (var form in new[] { MoeForm.Fused, MoeForm.Decomposed })
                data.Add(dir, form);
        return data;
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Fp32_package_matches_golden_logits(string modelDir, MoeForm form)
    {
        using var temp = new TempDirectory();
        string package = temp.File("pkg");
        PackageExporter.Export(modelDir, package, new ExportOptions { Moe = form }, overwrite: false);
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(modelDir, "input_ids.json")))!;
        var expected = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(modelDir, "logits.f32"))).ToArray();

        using var session = DecoderSession.Open(package);
        int vocab = session.Shape.VocabSize;
        float[] whole = session.Forward(ids, session.NewCache());
        AssertClose(expected, whole, vocab, "whole sequence");

        var cache = session.NewCache();
        var stepwise = new float[ids.Length * vocab];
        for (int t = 0; t < ids.Length; t++)
            session.Forward(ids.AsSpan(t, 1), cache).CopyTo(stepwise.AsSpan(t * vocab));
        Assert.Equal(ids.Length, cache.Length);
        AssertClose(expected, stepwise, vocab, "token by token");
    }

    public static TheoryData<string> GoldenSets() => new() { "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama4" };

    [SkippableTheory]
    [MemberData(nameof(GoldenSets))]
    public void Fp32_package_matches_shared_golden_logits(string name)
    {
        string? dir = TestPaths.SharedGolden(name);
        Skip.If(dir is null, TestPaths.SharedMissing);
        Fp32_package_matches_golden_logits(dir!, MoeForm.Fused);
    }

    [Fact]
    public void Prefill_then_decode_continues_the_same_sequence()
    {
        // Llama 4 golden: 8-token chunks, so a 13-token prefill ends mid-chunk and decoding crosses a boundary.
        string dir = TestPaths.Golden("llama4");
        using var temp = new TempDirectory();
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions(), overwrite: false);
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(dir, "input_ids.json")))!;
        var expected = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "logits.f32"))).ToArray();
        using var session = DecoderSession.Open(temp.File("pkg"));
        int v = session.Shape.VocabSize;
        var cache = session.NewCache();
        var got = new List<float>(session.Forward(ids.AsSpan(0, 13), cache));
        got.AddRange(session.Forward(ids.AsSpan(13, 5), cache));
        for (int t = 18; t < ids.Length; t++) got.AddRange(session.Forward(ids.AsSpan(t, 1), cache));
        AssertClose(expected, got.ToArray(), v, "prefill 13, then 5, then 1 at a time");
    }

    private static void AssertClose(float[] expected, float[] actual, int vocab, string how)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        int worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(expected[i] - actual[i]);
            if (!(d <= max)) (max, worst) = (d, i);
        }
        Assert.True(max <= Tolerance, $"{how}: max |diff| {max:E3} at position {worst / vocab}, token {worst % vocab}");
    }
}
