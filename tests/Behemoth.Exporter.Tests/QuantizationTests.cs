using System.Text.Json;
using Behemoth.Exporter.Export;
using Behemoth.Exporter.Quantization;
using Behemoth.Runtime;
using Behemoth.Tests;
using Behemoth.Package;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Quantized packages: ONNX Runtime's integer kernels (MatMulNBits, QMoE) must compute what the dequantized weights
/// compute. The oracle is a float32 package of the same weights quantized and dequantized by BlockQuantizer.
/// </summary>
public sealed class QuantizationTests
{
    public static TheoryData<string, WeightType, MoeForm> Cases()
    {
        var data = new TheoryData<string, WeightType, MoeForm>();
        foreach (var model in new[] { "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama4" })
            foreach (var quant in new[] { WeightType.Int4, WeightType.Int8 })
                foreach (var form in new[] { MoeForm.Fused, MoeForm.Decomposed })
                    data.Add(model, quant, form);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Integer_kernels_match_the_dequantized_weights(string model, WeightType quant, MoeForm form)
    {
        string dir = TestPaths.Golden(model);
        using var temp = new TempDirectory();
        var options = new ExportOptions { Quant = quant, BlockSize = 16, Moe = form };
        PackageExporter.Export(dir, temp.File("q"), options, overwrite: false);
        PackageExporter.Export(dir, temp.File("sim"), options with { SimulateQuantization = true }, overwrite: false);
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(dir, "input_ids.json")))!;

        float[] Run(string package)
        {
            using var s = DecoderSession.Open(package);
            return s.Forward(ids, s.NewCache());
        }
        float[] real = Run(temp.File("q")), simulated = Run(temp.File("sim"));
        double max = real.Zip(simulated, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(max <= 1e-4, $"{quant} {form}: max |diff| {max:E3} against the dequantized float32 package");
    }

    [Theory]
    [InlineData("mixtral")]
    [InlineData("olmoe")]
    [InlineData("llama4")]
    public void Fp16_storage_stays_within_float16_rounding_of_the_golden_logits(string model)
    {
        string dir = TestPaths.Golden(model);
        using var temp = new TempDirectory();
        var result = PackageExporter.Export(dir, temp.File("h"), new ExportOptions { Quant = WeightType.Fp16 }, overwrite: false);
        Assert.All(result.QuantErrors, e => Assert.True(e.RelativeError < 1e-3, $"{e.Name}: {e.RelativeError:E2}"));
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(dir, "input_ids.json")))!;
        var expected = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "logits.f32"))).ToArray();
        using var s = DecoderSession.Open(temp.File("h"));
        float[] logits = s.Forward(ids, s.NewCache());
        double max = logits.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(max <= 1e-2, $"max |diff| {max:E3}");
        Assert.Equal(WeightType.Fp16, s.Manifest.Quantization.Weights);
    }

    [Theory]
    [InlineData(4, 32, 64)]
    [InlineData(8, 32, 64)]
    [InlineData(4, 16, 40)]   // last block padded
    public void Round_trip_error_is_at_most_half_a_step(int bits, int blockSize, int cols)
    {
        const int rows = 7;
        var rng = new Random(5);
        var w = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1) * (rng.Next(3) + 0.1f)).ToArray();
        int blocks = BlockQuantizer.BlocksPerRow(cols, blockSize);
        var packed = new byte[rows * blocks * BlockQuantizer.BytesPerBlock(bits, blockSize)];
        var scales = new float[rows * blocks];
        var error = BlockQuantizer.Quantize(w, rows, cols, bits, blockSize, packed, scales);
        var back = new float[w.Length];
        BlockQuantizer.Dequantize(packed, scales, rows, cols, bits, blockSize, back);
        for (int i = 0; i < w.Length; i++)
        {
            float scale = scales[(i / cols) * blocks + (i % cols) / blockSize];
            Assert.True(Math.Abs(w[i] - back[i]) <= scale / 2 + 1e-7f, $"element {i}: {w[i]} → {back[i]} (scale {scale})");
        }
        Assert.Equal(w.Length, error.Count);
        Assert.InRange(error.RelativeError, 1e-6, bits == 4 ? 0.2 : 0.02);
    }

    [Fact]
    public void Four_bit_values_pack_the_even_column_in_the_low_nibble()
    {
        // one row, one block of 16: w = [1, -1, 0, ...] with absmax 1 → scale 1/7, q = 7, -7, 0 → stored 15, 1, 8
        var w = new float[16];
        w[0] = 1;
        w[1] = -1;
        var packed = new byte[8];
        var scales = new float[1];
        BlockQuantizer.Quantize(w, 1, 16, 4, 16, packed, scales);
        Assert.Equal(1f / 7, scales[0], 6);
        Assert.Equal(0x1F, packed[0]);           // low nibble 15 (column 0), high nibble 1 (column 1)
        Assert.Equal(0x88, packed[1]);           // two zeros, stored as the zero point 8
    }
}
