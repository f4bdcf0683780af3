using System.Runtime.InteropServices;
using System.Text.Json;
using Behemoth.Exporter.Export;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// The KV cache keeps what attention needs without copying itself every token: GroupQueryAttention layers append in
/// place into a preallocated buffer, other layers take ONNX Runtime's presents as they are, and chunked or sliding
/// layers hold at most one chunk or window. Logits stay those of the golden sets (the parity tests check every model
/// token by token; here the cache's own accounting).
/// </summary>
public sealed class KvCacheTests
{
    [Fact]
    public void Full_attention_layers_append_in_place_without_copying()
    {
        using var temp = new TempDirectory();
        string dir = TestPaths.Golden("qwen3_moe");
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions(), overwrite: false);
        var manifest = PackageReader.ReadManifest(temp.File("pkg"));
        Assert.All(manifest.KvCache!, l => Assert.True(l.SharedBuffer, $"layer {l.Layer} is expected on GroupQueryAttention"));

        int[] ids = ReadIds(dir);
        using var session = DecoderSession.Open(temp.File("pkg"));
        using var cache = session.NewCache(capacity: ids.Length);
        long bytes = cache.Bytes;
        var logits = new List<float>();
        foreach (int id in ids)
        {
            logits.AddRange(session.Forward([id], cache));
            Assert.Equal(bytes, cache.Bytes);
        }
        Assert.Equal(0, cache.BytesCopied);
        AssertMatchesGolden(dir, logits.ToArray());
    }

    [Fact]
    public void A_preallocated_buffer_that_is_too_small_grows_and_keeps_its_keys()
    {
        using var temp = new TempDirectory();
        string dir = TestPaths.Golden("qwen3_moe");
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions(), overwrite: false);
        int[] ids = ReadIds(dir);
        using var session = DecoderSession.Open(temp.File("pkg"));
        using var cache = session.NewCache(capacity: 2);
        var logits = new List<float>(session.Forward(ids.AsSpan(0, 3), cache));
        for (int t = 3; t < ids.Length; t++) logits.AddRange(session.Forward(ids.AsSpan(t, 1), cache));
        Assert.True(cache.BytesCopied > 0);
        AssertMatchesGolden(dir, logits.ToArray());
    }

    [Theory]
    [InlineData(MoeForm.Fused)]
    [InlineData(MoeForm.Decomposed)]
    public void Chunked_layers_hold_at_most_one_chunk(MoeForm form)
    {
        using var temp = new TempDirectory();
        string dir = TestPaths.Golden("llama4");
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions { Moe = form }, overwrite: false);
        var layout = PackageReader.ReadManifest(temp.File("pkg")).KvCache!;
        var chunked = layout.Where(l => l.Attention == AttentionKind.Chunked).ToArray();
        Assert.NotEmpty(chunked);
        int chunk = chunked[0].Window!.Value;

        int[] ids = ReadIds(dir);
        Assert.True(ids.Length > 2 * chunk, "the golden sequence crosses two chunk boundaries");
        using var session = DecoderSession.Open(temp.File("pkg"));
        using var cache = session.NewCache();
        var logits = new List<float>(session.Forward(ids.AsSpan(0, chunk + 3), cache));       // a prefill across a boundary
        for (int t = chunk + 3; t < ids.Length; t++)
        {
            foreach (var l in chunked) Assert.Equal(cache.Length % chunk, cache.LayerLength(l.Layer));
            logits.AddRange(session.Forward(ids.AsSpan(t, 1), cache));
        }
        foreach (var l in layout.Where(l => l.Attention == AttentionKind.Full)) Assert.Equal(ids.Length, cache.LayerLength(l.Layer));
        AssertMatchesGolden(dir, logits.ToArray());
    }

    [Fact]
    public void A_stream_longer_than_many_chunks_has_bounded_cache_memory()
    {
        // behemoth-nano: three chunked layers (128-token chunks) and one full-attention layer.
        using var temp = new TempDirectory();
        PackageExporter.Export(Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano"), temp.File("pkg"), new ExportOptions { Quant = WeightType.Int4 }, overwrite: false);
        using var session = DecoderSession.Open(temp.File("pkg"));
        var layout = session.Manifest.KvCache!;
        using var cache = session.NewCache(capacity: 1024);
        var random = new Random(7);
        int maxChunked = 0;
        session.Forward(Enumerable.Range(0, 300).Select(_ => random.Next(4, session.Shape.VocabSize)).ToArray(), cache);
        for (int t = 0; t < 400; t++)
        {
            session.Forward([random.Next(4, session.Shape.VocabSize)], cache);
            maxChunked = Math.Max(maxChunked, layout.Where(l => l.Attention == AttentionKind.Chunked).Max(l => cache.LayerLength(l.Layer)));
        }
        Assert.Equal(700, cache.Length);
        Assert.InRange(maxChunked, 100, 127);
        // copies happen only when a chunk boundary is crossed, and each is under one chunk
        long perChunkCopy = 2L * 127 * session.Shape.NumKvHeads * session.Shape.HeadDim * sizeof(float) * 3;
        Assert.InRange(cache.BytesCopied, 1, 6 * perChunkCopy);
    }

    [Fact]
    public void One_sequence_binding_serves_any_mix_of_calls_and_sessions()
    {
        // The binding a cache keeps between runs (tokens, mask, last-row logits, in-place layers) must not leak one
        // call's state into the next: prefills and single steps, every row and the last row only, a GroupQueryAttention
        // buffer that grows, and a second session of the package taking the sequence over.
        using var temp = new TempDirectory();
        string dir = TestPaths.Golden("llama4");
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions(), overwrite: false);
        int[] ids = ReadIds(dir);
        int vocab;
        var rows = new List<float[]>();
        using (var first = DecoderSession.Open(temp.File("pkg")))
        using (var second = DecoderSession.Open(temp.File("pkg")))
        using (var cache = first.NewCache(capacity: 2))
        {
            vocab = first.Shape.VocabSize;
            var last = new float[vocab];
            int t = 0;
            void Last(DecoderSession s, int n)
            {
                s.ForwardLast(ids.AsSpan(t, n), cache, last);
                for (int i = 0; i < n - 1; i++) rows.Add(null!);      // rows the call does not return
                rows.Add([.. last]);
                t += n;
            }
            void All(DecoderSession s, int n)
            {
                var all = s.Forward(ids.AsSpan(t, n), cache);
                for (int i = 0; i < n; i++) rows.Add(all.AsSpan(i * vocab, vocab).ToArray());
                t += n;
            }
            Last(first, 3); Last(first, 1); All(first, 1); Last(first, 1); All(first, 2); Last(first, 1);
            Last(second, 1); Last(second, 2); Last(first, 1);
            while (t < ids.Length) Last(t % 2 == 0 ? first : second, 1);
        }
        var expected = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "logits.f32"))).ToArray();
        double max = 0;
        for (int p = 0; p < rows.Count; p++)
        {
            if (rows[p] is null) continue;
            for (int i = 0; i < vocab; i++) max = Math.Max(max, Math.Abs(expected[p * vocab + i] - rows[p][i]));
        }
        Assert.Equal(ids.Length, rows.Count);
        Assert.True(max <= 1e-4, $"max |diff| {max:E3}");
    }

    private static int[] ReadIds(string dir) => JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(dir, "input_ids.json")))!;

    private static void AssertMatchesGolden(string dir, float[] actual)
    {
        var expected = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "logits.f32"))).ToArray();
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max <= 1e-4, $"max |diff| {max:E3}");
    }
}
