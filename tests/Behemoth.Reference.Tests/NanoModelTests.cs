using System.Runtime.InteropServices;
using System.Text.Json;
using Behemoth.Formats.Architectures;
using Behemoth.Formats.Config;
using Behemoth.Formats.Description;
using Behemoth.Tests;
using Behemoth.Package;

namespace Behemoth.Reference.Tests;

/// <summary>
/// The bundled default model, models/behemoth-nano: the reference engine reproduces the logits its trainer
/// (PyTorch, float32 forward of the shipped bf16 weights) wrote to tests/fixtures/nano_parity, and the
/// checkpoint keeps the shape the rest of Behemoth relies on.
/// </summary>
public sealed class NanoModelTests
{
    private static string ModelDir => Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano");
    private static string ParityDir => Path.Combine(TestPaths.RepoRoot, "tests", "fixtures", "nano_parity");

    [Fact]
    public void Reference_engine_matches_the_trainer_logits()
    {
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(ParityDir, "input_ids.json")))!;
        using var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(ParityDir, "parity.json")));
        int stride = meta.RootElement.GetProperty("column_stride").GetInt32();
        var expected = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(ParityDir, "logits.f32"))).ToArray();

        using var model = ReferenceModel.Load(ModelDir);
        int vocab = model.Config.VocabSize;
        int columns = (vocab + stride - 1) / stride;
        Assert.Contains(model.Config.Layers, l => l.Attention == AttentionKind.Chunked && ids.Length > l.Window);
        Assert.Equal(ids.Length * columns, expected.Length);

        float[] logits = model.Forward(ids);
        double max = 0;
        for (int t = 0; t < ids.Length; t++)
            for (int j = 0; j < columns; j++)
                max = Math.Max(max, Math.Abs(logits[t * vocab + j * stride] - expected[t * columns + j]));
        Assert.True(max <= 1e-3, $"max |diff| {max:E3} against the trainer's logits");
    }

    [Fact]
    public void Checkpoint_has_the_promised_shape()
    {
        var config = ArchitectureRegistry.ReadDecoder(ArchitectureRegistry.LoadConfig(ModelDir));
        Assert.Equal("Llama4ForCausalLM", config.Architecture);
        Assert.All(config.Layers, l => Assert.Equal(FeedForwardKind.Moe, l.FeedForward));
        Assert.InRange(config.Moe.NumExperts, 8, 16);
        Assert.Equal(1, config.Moe.TopK);
        Assert.Equal(RouterKind.TopKSigmoid, config.Moe.Router);
        Assert.Contains(config.Layers, l => !l.UseRope && l.TemperatureTuning);

        var description = ModelDescription.FromDecoder(config);
        double expertShare = description.Tensors.Where(t => t.Role is TensorRole.RoutedExperts or TensorRole.SharedExpert).Sum(t => (double)t.Elements)
            / description.TotalParameters;
        Assert.True(expertShare >= 0.70, $"experts hold {expertShare:P1} of the parameters");
        Assert.True(new FileInfo(Path.Combine(ModelDir, "model.safetensors")).Length <= 25_000_000);
        foreach (var file in new[] { "tokenizer.model", "generation_config.json", "MODEL_CARD.md", "loss_curve.png" })
            Assert.True(File.Exists(Path.Combine(ModelDir, file)), file + " is missing");
    }
}
