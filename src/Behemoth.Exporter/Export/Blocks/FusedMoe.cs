using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.Blocks.Ops;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>
/// Routed experts through ONNX Runtime's com.microsoft MoE kernel. Its CPU kernel takes interleaved SwiGLU:
/// fc1 is [experts, 2·intermediate, hidden] with row 2j the gate's row j and row 2j+1 the up projection's row j,
/// fc2 is [experts, hidden, intermediate]; it applies softmax to the router logits, keeps the top k and optionally
/// renormalises them, and scales each expert's output by its weight.
/// Llama 4 routes differently (sigmoid of the top-1 logit scales the expert's input): with k = 1 that scale is one
/// number per token whatever the expert, so the input is scaled before the kernel and the kernel's weight is 1.
/// int8 / int4 packages use QMoE: the same layout quantized block-wise along each row (see BlockQuantizer).
/// </summary>
internal static class FusedMoe
{
    /// <param name="storage">The layer's original expert ids in stack order.</param>
    /// <param name="start">The first expert of the stack this graph routes to.</param>
    /// <param name="keep">How many experts of the stack (from <paramref name="start"/>) this graph routes to; <paramref name="logits"/> has one column each.</param>
    /// <param name="replaced">A profile's distilled experts (null: the checkpoint's).</param>
    /// <param name="stack">The stack's tensor name prefix (a profile with distilled experts has its own).</param>
    public static string Write(GraphBuilder g, WeightSource w, DecoderConfig c, int layer, string x, string logits, int[] storage, int start, int keep,
        Func<int, ExpertMatrices?>? replaced, string stack)
    {
        var m = c.Moe;
        int h = c.HiddenSize, inter = m.ExpertIntermediate;
        var fc1 = w.ExpertStack($"{stack}.fc1", storage.Length, start, keep, 2 * inter, h, (i, block) =>
        {
            if (replaced?.Invoke(storage[i]) is { } own) Interleave(own.Gate, own.Up, inter, h, block);
            else ExpertFc1(w, c, layer, storage[i], block);
        });
        var fc2 = w.ExpertStack($"{stack}.fc2", storage.Length, start, keep, h, inter, (i, block) =>
        {
            if (replaced?.Invoke(storage[i]) is { } own) own.Down.CopyTo(block);
            else ExpertFc2(w, c, layer, storage[i], block);
        });

        string input = x;
        bool normalize = m.NormTopKProb;
        if (m.Router == RouterKind.TopKSigmoid)
        {
            // routed_in = hidden_states * sigmoid(top-1 logit); the kernel then weights the (only) expert by 1.
            string top = g.Op("ReduceMax", [logits, g.Int64Vector(1)], Attr(("keepdims", 1)));
            input = g.Op("Mul", [x, g.Op("Sigmoid", [top])]);
            normalize = true;
        }
        var attributes = Attr(("k", m.TopK), ("activation_type", "swiglu"), ("swiglu_fusion", 1), ("normalize_routing_weights", normalize ? 1 : 0));
        if (fc1.Scales is null)
            return g.Op("MoE", [input, logits, fc1.Weights, "", fc2.Weights], attributes, domain: GraphBuilder.MicrosoftDomain);
        attributes["expert_weight_bits"] = w.Options.Bits;
        attributes["block_size"] = w.Options.BlockSize;
        if (normalize)
            return g.Op("QMoE", [input, logits, fc1.Weights, fc1.Scales, "", fc2.Weights, fc2.Scales!], attributes, domain: GraphBuilder.MicrosoftDomain);
        // QMoE renormalises the top-k weights whatever normalize_routing_weights says (measured on ONNX Runtime 1.31).
        // The output is linear in the weights, so multiplying by the top-k probability mass per token undoes it.
        attributes["normalize_routing_weights"] = 1;
        string routed = g.Op("QMoE", [input, logits, fc1.Weights, fc1.Scales, "", fc2.Weights, fc2.Scales!], attributes, domain: GraphBuilder.MicrosoftDomain);
        string probs = g.Op("Softmax", [logits], Attr(("axis", -1)));
        string topMass = g.Op("ReduceSum", [g.OpMulti("TopK", [probs, g.Int64Vector(m.TopK)], 2, Attr(("axis", -1)))[0], g.Int64Vector(1)], Attr(("keepdims", 1)));
        return g.Op("Mul", [routed, topMass]);
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
        Interleave(w.Read(TensorNames.Format(n.ExpertGate!, layer, e), inter, h), w.Read(TensorNames.Format(n.ExpertUp!, layer, e), inter, h), inter, h, block);
    }

    /// <summary>Gate and up [inter, hidden] into fc1's interleaved rows: 2j the gate's row j, 2j+1 the up projection's.</summary>
    private static void Interleave(float[] gate, float[] up, int inter, int h, Span<float> block)
    {
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
