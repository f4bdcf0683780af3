using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.DecoderGraph;

namespace Behemoth.Exporter.Export;

/// <summary>
/// Routed experts through ONNX Runtime's com.microsoft MoE kernel. Its CPU kernel takes interleaved SwiGLU:
/// fc1 is [experts, 2·intermediate, hidden] with row 2j the gate's row j and row 2j+1 the up projection's row j,
/// fc2 is [experts, hidden, intermediate]; it applies softmax to the router logits, keeps the top k and optionally
/// renormalises them, and scales each expert's output by its weight.
/// Llama 4 routes differently (sigmoid of the top-1 logit scales the expert's input): with k = 1 that scale is one
/// number per token whatever the expert, so the input is scaled before the kernel and the kernel's weight is 1.
/// </summary>
internal static class FusedMoe
{
    public static string Write(GraphBuilder g, WeightSource w, DecoderConfig c, int layer, string x, string logits)
    {
        var m = c.Moe;
        int h = c.HiddenSize, inter = m.ExpertIntermediate;
        string fc1 = w.Stacked($"model.layers.{layer}.moe.fc1", m.NumExperts, [2 * inter, h], (e, block) => ExpertFc1(w, c, layer, e, block));
        string fc2 = w.Stacked($"model.layers.{layer}.moe.fc2", m.NumExperts, [h, inter], (e, block) => ExpertFc2(w, c, layer, e, block));

        string input = x;
        int k = m.TopK;
        bool normalize = m.NormTopKProb;
        if (m.Router == RouterKind.TopKSigmoid)
        {
            // routed_in = hidden_states * sigmoid(top-1 logit); the kernel then weights the (only) expert by 1.
            string top = g.Op("ReduceMax", [logits, g.Int64Vector(1)], Attr(("keepdims", 1)));
            input = g.Op("Mul", [x, g.Op("Sigmoid", [top])]);
            normalize = true;
        }
        return g.Op("MoE", [input, logits, fc1, "", fc2], Attr(
            ("k", k), ("activation_type", "swiglu"), ("swiglu_fusion", 1), ("normalize_routing_weights", normalize ? 1 : 0)),
            domain: GraphBuilder.MicrosoftDomain);
    }

    /// <summary>Expert e's interleaved [2·intermediate, hidden] gate/up block.</summary>
    internal static void ExpertFc1(WeightSource w, DecoderConfig c, int layer, int e, Span<float> block)
    {
        int h = c.HiddenSize, inter = c.Moe.ExpertIntermediate;
        var n = c.Names;
        if (c.Moe.Layout == ExpertLayout.Fused)
        {
            // gate_up_proj [experts, hidden, 2·intermediate], gate columns first
            float[] gu = ReadExpertSlice(w, TensorNames.Format(n.FusedGateUp!, layer), e, [c.Moe.NumExperts, h, 2 * inter]);
            for (int r = 0; r < h; r++)
                for (int j = 0; j < inter; j++)
                {
                    block[(2 * j) * h + r] = gu[r * 2 * inter + j];
                    block[(2 * j + 1) * h + r] = gu[r * 2 * inter + inter + j];
                }
            return;
        }
        float[] gate = w.Read(TensorNames.Format(n.ExpertGate!, layer, e), inter, h);
        float[] up = w.Read(TensorNames.Format(n.ExpertUp!, layer, e), inter, h);
        for (int j = 0; j < inter; j++)
        {
            gate.AsSpan(j * h, h).CopyTo(block.Slice(2 * j * h, h));
            up.AsSpan(j * h, h).CopyTo(block.Slice((2 * j + 1) * h, h));
        }
    }

    /// <summary>Expert e's [hidden, intermediate] down projection.</summary>
    internal static void ExpertFc2(WeightSource w, DecoderConfig c, int layer, int e, Span<float> block)
    {
        int h = c.HiddenSize, inter = c.Moe.ExpertIntermediate;
        var n = c.Names;
        if (c.Moe.Layout == ExpertLayout.Fused)
        {
            // down_proj [experts, intermediate, hidden]: transpose expert e's slice
            float[] down = ReadExpertSlice(w, TensorNames.Format(n.FusedDown!, layer), e, [c.Moe.NumExperts, inter, h]);
            for (int j = 0; j < inter; j++)
                for (int r = 0; r < h; r++)
                    block[r * inter + j] = down[j * h + r];
            return;
        }
        w.Read(TensorNames.Format(n.ExpertDown!, layer, e), h, inter).CopyTo(block);
    }

    internal static float[] ReadExpertSlice(WeightSource w, string name, int expert, long[] shape)
    {
        long per = shape[1] * shape[2];
        var slice = new float[per];
        w.Tensor(name, shape).ReadFloat32(slice, expert * per);
        return slice;
    }
}
