using Behemoth.Formats.Config;

namespace Behemoth.Reference.Blocks;

/// <summary>The SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)), used by dense layers, routed and shared experts.</summary>
internal static class FeedForward
{
    /// <summary>nn.Linear-layout weights: gate and up [inter, hidden], down [hidden, inter]. Output overwrites <paramref name="y"/>.</summary>
    public static void SwiGlu(Weights w, string gate, string up, string down, ReadOnlySpan<float> x, Span<float> y, int hidden, int inter)
    {
        int rows = x.Length / hidden;
        var g = new float[rows * inter];
        var u = new float[rows * inter];
        using (var wg = w.View(gate)) Ops.Linear(x, wg.Span, default, g, hidden, inter);
        using (var wu = w.View(up)) Ops.Linear(x, wu.Span, default, u, hidden, inter);
        Ops.SiluMul(g, u);
        using var wd = w.View(down);
        Ops.Linear(g, wd.Span, default, y, inter, hidden);
    }

    /// <summary>
    /// One expert of Llama 4's fused layout: gate_up [hidden, 2·inter] (gate columns first), down [inter, hidden],
    /// both used as x · M (HF Llama4TextExperts uses torch.bmm on the stored layout).
    /// </summary>
    public static void FusedSwiGlu(Weights w, string gateUp, string down, int expert, ReadOnlySpan<float> x, Span<float> y, int hidden, int inter)
    {
        int rows = x.Length / hidden;
        var gu = new float[rows * 2 * inter];
        using (var m = w.Slice(gateUp, expert)) Ops.MatMul(x, m.Span, gu, hidden, 2 * inter);
        var act = new float[rows * inter];
        for (int r = 0; r < rows; r++)
        {
            var gate = act.AsSpan(r * inter, inter);
            gu.AsSpan(r * 2 * inter, inter).CopyTo(gate);
            Ops.SiluMul(gate, gu.AsSpan(r * 2 * inter + inter, inter));
        }
        using var d = w.Slice(down, expert);
        Ops.MatMul(act, d.Span, y, inter, hidden);
    }
}
