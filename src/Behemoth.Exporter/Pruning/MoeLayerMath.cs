using System.Numerics.Tensors;
using Behemoth.Formats.Config;
using Behemoth.Reference;
using Behemoth.Reference.Blocks;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// The routed part of one MoE layer on calibration inputs, expert by expert, with the reference engine's math:
/// router logits, routing (optionally restricted to kept experts), and each expert's output on the inputs the
/// router sends it (Llama 4 scales the input by the gate, the others scale the output).
/// </summary>
internal sealed class MoeLayerMath(ReferenceModel model, int layer)
{
    private readonly DecoderConfig _c = model.Config;
    private float[]? _router;

    public int Layer => layer;
    public int Hidden => _c.HiddenSize;
    public int Experts => _c.Moe.NumExperts;
    public MoeSpec Moe => _c.Moe;
    public bool ScalesInput => _c.Moe.Router == RouterKind.TopKSigmoid;

    public float[] RouterWeights => _router ??= model.RouterWeights(layer);

    /// <summary>Router logits [tokens, experts] for inputs x [tokens, hidden].</summary>
    public float[] Logits(ReadOnlySpan<float> x, float[]? router = null)
    {
        int tokens = x.Length / Hidden;
        var logits = new float[tokens * Experts];
        Ops.Linear(x, router ?? RouterWeights, default, logits, Hidden, Experts);
        return logits;
    }

    /// <summary>Top-k routing of every token; with <paramref name="allowed"/>, among those experts only.</summary>
    public List<Routing> Route(ReadOnlySpan<float> logits, ReadOnlySpan<bool> allowed = default)
    {
        int tokens = logits.Length / Experts;
        var routes = new List<Routing>(tokens * Moe.TopK);
        for (int t = 0; t < tokens; t++) Router.Route(Moe, logits.Slice(t * Experts, Experts), t, routes, allowed);
        return routes;
    }

    /// <summary>
    /// Expert e on rows of x: y = down(silu(gate·x̃) ⊙ up·x̃) with x̃ = x (or x scaled by the gate for Llama 4);
    /// the returned contribution is y (Llama 4) or gate × y (the others). <paramref name="hidden"/>, when given,
    /// receives silu(gate·x̃) ⊙ up·x̃ [rows, intermediate].
    /// </summary>
    public static float[] Contribution((float[] Gate, float[] Up, float[] Down) w, ReadOnlySpan<float> x, ReadOnlySpan<float> gates,
        bool scalesInput, int hidden, int inter, float[]? hiddenOut = null)
    {
        int rows = gates.Length;
        var input = x.ToArray();
        if (scalesInput)
            for (int r = 0; r < rows; r++) TensorPrimitives.Multiply(input.AsSpan(r * hidden, hidden), gates[r], input.AsSpan(r * hidden, hidden));
        var g = new float[rows * inter];
        var u = new float[rows * inter];
        Ops.Linear(input, w.Gate, default, g, hidden, inter);
        Ops.Linear(input, w.Up, default, u, hidden, inter);
        Ops.SiluMul(g, u);
        if (hiddenOut is not null) g.CopyTo(hiddenOut, 0);
        var y = new float[rows * hidden];
        Ops.Linear(g, w.Down, default, y, inter, hidden);
        if (!scalesInput)
            for (int r = 0; r < rows; r++) TensorPrimitives.Multiply(y.AsSpan(r * hidden, hidden), gates[r], y.AsSpan(r * hidden, hidden));
        return y;
    }

    public (float[] Gate, float[] Up, float[] Down) Weights(int expert) => model.ExpertWeights(layer, expert);
}
