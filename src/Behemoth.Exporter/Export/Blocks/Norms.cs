using Behemoth.Exporter.Onnx;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>RMSNorm over the last axis, as ONNX Runtime's SimplifiedLayerNormalization (float32 statistics).</summary>
internal static class Norms
{
    /// <summary>x / rms(x) · weight, in a scope named <paramref name="scope"/>.</summary>
    public static string Rms(GraphContext x, string scope, string input, string weight)
    {
        using (x.G.Scope(scope))
            return x.G.Op("SimplifiedLayerNormalization", [input, weight],
                Ops.Attr(("axis", -1), ("epsilon", (float)x.C.RmsNormEps), ("stash_type", 1)));
    }

    /// <summary>RMSNorm of an initializer <paramref name="tensor"/> of <paramref name="size"/> weights read from the checkpoint.</summary>
    public static string Rms(GraphContext x, string scope, string input, string tensor, int size) => Rms(x, scope, input, x.W.Float(tensor, size));

    /// <summary>The weightless RMS ("L2") norm over the last axis of <paramref name="size"/> values (Llama 4's QK norm).</summary>
    public static string L2(GraphContext x, string scope, string input, int size) =>
        Rms(x, scope, input, x.G.Floats([size], Enumerable.Repeat(1f, size).ToArray()));
}
