using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.Blocks.Ops;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>
/// Routed experts with standard ONNX ops only, for execution providers without MoE kernels (DirectML): TopK picks
/// the experts, and per expert NonZero/Gather select the tokens routed to it, its SwiGLU runs on those rows only,
/// and ScatterND adds the weighted result back. Also the form for sigmoid routing with k &gt; 1, where each chosen
/// expert sees its own scaled input and no fused kernel applies.
/// </summary>
internal static class DecomposedMoe
{
    /// <param name="kept">The original ids of the experts this graph routes to; <paramref name="logits"/> column i is expert kept[i].</param>
    /// <param name="replaced">A profile's distilled experts (null: the checkpoint's, shared by every profile).</param>
    public static string Write(GraphBuilder g, WeightSource w, DecoderConfig c, int layer, string x, string logits, int[] kept,
        Func<int, ExpertMatrices?>? replaced = null, string? profile = null)
    {
        var m = c.Moe;
        var top = g.OpMulti("TopK", [logits, g.Int64Vector(m.TopK)], 2, Attr(("axis", -1), ("largest", 1), ("sorted", 1)));
        string topValues = top[0], topIds = top[1];                                   // [tokens, k]
        string weights;
        if (m.Router == RouterKind.TopKSigmoid)
            weights = g.Op("Sigmoid", [topValues]);
        else
        {
            // softmax over all experts, then the top-k probabilities (renormalised when norm_topk_prob)
            weights = g.Op("GatherElements", [g.Op("Softmax", [logits], Attr(("axis", -1))), topIds], Attr(("axis", 1)));
            if (m.NormTopKProb)
                weights = g.Op("Div", [weights, g.Op("ReduceSum", [weights, g.Int64Vector(1)], Attr(("keepdims", 1)))]);
        }

        string y = g.Op("ConstantOfShape", [g.Op("Shape", [x])], Attr(("value", ZeroFloat())));
        string zero = g.FloatScalar(0f);
        for (int i = 0; i < kept.Length; i++)
        {
            int e = kept[i];
            using var scope = g.Scope($"{e}");
            string chosen = g.Op("Equal", [topIds, g.Int64Scalar(i)]);                           // [tokens, k]
            string weight = g.Op("ReduceSum", [g.Op("Where", [chosen, weights, zero]), g.Int64Vector(1)], Attr(("keepdims", 0)));
            string any = g.Op("ReduceMax", [g.Op("Cast", [chosen], Attr(("to", (int)ElementType.Int32))), g.Int64Vector(1)], Attr(("keepdims", 0)));
            string rows = g.Op("Reshape", [g.Op("NonZero", [any]), g.Int64Vector(-1)]);           // [routed]
            string xe = g.Op("Gather", [x, rows], Attr(("axis", 0)));                            // [routed, hidden]
            string we = g.Op("Unsqueeze", [g.Op("Gather", [weight, rows], Attr(("axis", 0))), g.Int64Vector(1)]);
            string output;
            if (m.Router == RouterKind.TopKSigmoid)
                output = Expert(g, w, c, layer, e, g.Op("Mul", [xe, we]), replaced?.Invoke(e), profile);   // Llama 4 scales the input
            else
                output = g.Op("Mul", [Expert(g, w, c, layer, e, xe, replaced?.Invoke(e), profile), we]);
            y = g.Op("ScatterND", [y, g.Op("Unsqueeze", [rows, g.Int64Vector(1)]), output], Attr(("reduction", "add")));
        }
        return y;
    }

    /// <summary>down(silu(gate(x)) · up(x)) for expert e, each projection an nn.Linear [out, in] in the export's precision.</summary>
    private static string Expert(GraphBuilder g, WeightSource w, DecoderConfig c, int layer, int e, string x, ExpertMatrices? own, string? profile)
    {
        int h = c.HiddenSize, inter = c.Moe.ExpertIntermediate;
        var n = c.Names;
        string prefix = own is null ? $"model.layers.{layer}.experts.{e}" : $"model.layers.{layer}.experts.{e}.{profile}";
        // Read only when the expert is not stored yet (another profile's graph may have written it).
        var weights = new Lazy<(float[] Gate, float[] Up, float[] Down)>(() =>
        {
            if (own is not null) return (own.Gate, own.Up, own.Down);
            if (c.Moe.Layout != ExpertLayout.Fused)
                return (w.Read(TensorNames.Format(n.ExpertGate!, layer, e), inter, h),
                        w.Read(TensorNames.Format(n.ExpertUp!, layer, e), inter, h),
                        w.Read(TensorNames.Format(n.ExpertDown!, layer, e), h, inter));
            // Llama 4 stores gate_up [hidden, 2·intermediate] and down [intermediate, hidden]: transpose to [out, in].
            float[] gu = FusedMoe.ReadExpertSlice(w, TensorNames.Format(n.FusedGateUp!, layer), e, [c.Moe.NumExperts, h, 2 * inter]);
            float[] dn = FusedMoe.ReadExpertSlice(w, TensorNames.Format(n.FusedDown!, layer), e, [c.Moe.NumExperts, inter, h]);
            var (gateW, upW, downW) = (new float[inter * h], new float[inter * h], new float[h * inter]);
            for (int r = 0; r < h; r++)
                for (int j = 0; j < inter; j++)
                {
                    gateW[j * h + r] = gu[r * 2 * inter + j];
                    upW[j * h + r] = gu[r * 2 * inter + inter + j];
                    downW[r * inter + j] = dn[j * h + r];
                }
            return (gateW, upW, downW);
        });
        string gate, up, act;
        using (g.Scope("gate_proj")) gate = w.Linear(x, prefix + ".gate", () => weights.Value.Gate, inter, h);
        using (g.Scope("up_proj")) up = w.Linear(x, prefix + ".up", () => weights.Value.Up, inter, h);
        using (g.Scope("act_fn")) act = g.Op("Mul", [g.Op("Mul", [gate, g.Op("Sigmoid", [gate])]), up]);
        using (g.Scope("down_proj")) return w.Linear(act, prefix + ".down", () => weights.Value.Down, h, inter);
    }

    private static Onnx.Proto.TensorProto ZeroFloat()
    {
        var t = new Onnx.Proto.TensorProto { DataType = (int)ElementType.Float, RawData = Google.Protobuf.ByteString.CopyFrom(BitConverter.GetBytes(0f)) };
        t.Dims.Add(1);
        return t;
    }
}
