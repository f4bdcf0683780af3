using System.Runtime.InteropServices;
using System.Text.Json;
using Behemoth.Tests;

namespace Behemoth.Reference.Tests;

/// <summary>
/// The reference engine against logits computed in float64 by independent implementations of the Hugging Face
/// modeling code: tests/fixtures/golden (five architectures) and tests/fixtures/variants (flags, dtypes, sharding),
/// both from tools/oracle; and, when the shared folder is present, its golden sets from a separate implementation.
/// </summary>
public sealed class ParityTests
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string> GoldenSets() => new() { "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama4" };

    public static TheoryData<string> Variants()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(Path.Combine(TestPaths.RepoRoot, "tests", "fixtures", "variants")).Order())
            data.Add(Path.GetFileName(dir));
        return data;
    }

    [Theory]
    [MemberData(nameof(GoldenSets))]
    public void Matches_golden_logits(string name) => AssertParity(TestPaths.Golden(name));

    [SkippableTheory]
    [MemberData(nameof(GoldenSets))]
    public void Matches_shared_golden_logits(string name)
    {
        string? dir = TestPaths.SharedGolden(name);
        Skip.If(dir is null, TestPaths.SharedMissing);
        AssertParity(dir!);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Matches_variant_logits(string name) => AssertParity(TestPaths.Variant(name));

    private static void AssertParity(string dir)
    {
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(dir, "input_ids.json")))!;
        var expected = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "logits.f32"))).ToArray();
        using var model = ReferenceModel.Load(dir);
        float[] logits = model.Forward(ids);
        Assert.Equal(expected.Length, logits.Length);
        double max = 0;
        int worst = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double d = Math.Abs(logits[i] - expected[i]);
            if (d > max) (max, worst) = (d, i);
        }
        int vocab = model.Config.VocabSize;
        Assert.True(max <= Tolerance, $"max |diff| {max:E3} at position {worst / vocab}, token {worst % vocab}");
    }

    [Fact]
    public void Greedy_next_tokens_agree_with_the_golden_argmax()
    {
        string dir = TestPaths.Golden("llama4");
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(dir, "input_ids.json")))!;
        var expected = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "logits.f32"))).ToArray();
        using var model = ReferenceModel.Load(dir);
        var logits = model.Forward(ids);
        int v = model.Config.VocabSize;
        for (int t = 0; t < ids.Length; t++)
            Assert.Equal(ArgMax(expected.AsSpan(t * v, v)), ArgMax(logits.AsSpan(t * v, v)));
    }

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
