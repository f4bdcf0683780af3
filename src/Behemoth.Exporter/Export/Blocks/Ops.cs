using Behemoth.Exporter.Onnx;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>The primitives every block uses: node attributes, nn.Linear as Gemm, an optional bias.</summary>
internal static class Ops
{
    public static Dictionary<string, object> Attr(params (string Key, object Value)[] items) => items.ToDictionary(i => i.Key, i => i.Value);

    /// <summary>x [tokens, in] · Wᵀ (+ b), W in nn.Linear's [out, in] layout.</summary>
    public static string Gemm(GraphBuilder g, string x, string weight, string? bias = null) =>
        g.Op("Gemm", bias is null ? [x, weight] : [x, weight, bias], Attr(("transB", 1)));

    public static string AddBias(GraphBuilder g, string x, string? bias) => bias is null ? x : g.Op("Add", [x, bias]);
}
