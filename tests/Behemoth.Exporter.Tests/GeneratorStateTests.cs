using Behemoth.Exporter.Export;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// A generator's sequence saved to disk and restored in a new session carries on exactly where it was, without
/// running its tokens again; a state from another package or a damaged file is refused.
/// </summary>
public sealed class GeneratorStateTests(NanoPackageFixture nano) : IClassFixture<NanoPackageFixture>, IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly int[] Prompt = [1, 300, 301, 302, 40, 41, 42, 43, 44, 45];

    private string SavedAfterFiveTokens(out List<int> continuation, int more = 12)
    {
        using var session = DecoderSession.Open(nano.Package);
        using var generator = new Generator(session, new GenerationOptions { MaxNewTokens = 5 + more }, stopTokenIds: []);     // no end of sequence: a fixed length
        generator.AppendTokens(Prompt);
        for (int i = 0; i < 5; i++) generator.GenerateNextToken();
        string path = _temp.File("state-" + Guid.NewGuid().ToString("N")[..6]);
        generator.SaveState(path);
        continuation = [];
        while (!generator.IsDone) continuation.Add(generator.GenerateNextToken());
        return path;
    }

    [Fact]
    public void A_restored_sequence_continues_exactly_without_running_its_tokens_again()
    {
        string path = SavedAfterFiveTokens(out var expected);
        using var session = DecoderSession.Open(nano.Package);       // a new session, as after the app was killed
        int runs = 0, tokensRun = 0;
        session.RunStarting = () => runs++;
        using var restored = Generator.RestoreState(session, path, new GenerationOptions { MaxNewTokens = expected.Count }, stopTokenIds: []);
        Assert.Equal(Prompt.Length + 5, restored.Tokens.Count);
        var actual = new List<int>();
        while (!restored.IsDone)
        {
            actual.Add(restored.GenerateNextToken());
            tokensRun++;
        }
        Assert.Equal(expected, actual);
        Assert.Equal(tokensRun, runs);       // one run per new token: the prompt and the first five were not run again
        Assert.True(restored.Cache!.Length >= Prompt.Length + 5);
    }

    [Fact]
    public void A_state_from_another_package_is_refused_naming_it()
    {
        string path = SavedAfterFiveTokens(out _, more: 1);
        string other = _temp.File("other");
        PackageExporter.Export(Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano"), other, new ExportOptions { Quant = WeightType.Int8 }, overwrite: false);
        using var session = DecoderSession.Open(other);
        var e = Assert.Throws<SessionStateException>(() => Generator.RestoreState(session, path));
        Assert.Equal(path, e.StateName);
        Assert.Contains("another package", e.Message);
    }

    [Fact]
    public void A_damaged_or_cut_state_is_refused_and_nothing_is_restored()
    {
        string path = SavedAfterFiveTokens(out _, more: 1);
        var bytes = File.ReadAllBytes(path);
        using var session = DecoderSession.Open(nano.Package);
        var random = new Random(4);
        for (int trial = 0; trial < 20; trial++)
        {
            var damaged = bytes.ToArray();
            if (trial % 2 == 0) damaged[random.Next(100, damaged.Length)] ^= (byte)(1 << random.Next(8));
            else damaged = damaged[..random.Next(damaged.Length)];
            File.WriteAllBytes(path, damaged);
            var e = Assert.Throws<SessionStateException>(() => Generator.RestoreState(session, path));
            Assert.True(e.Message.Contains("damaged") || e.Message.Contains("not a Behemoth session state") || e.Message.Contains("outside the vocabulary"), e.Message);
        }
    }
}
