using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>
/// What every block of one graph shares: the builder, the model's config, the weights, the export's options, the
/// profile being written (and its experts), and the values computed once per graph (shapes, RoPE tables, masks).
/// </summary>
internal sealed class GraphContext(GraphBuilder g, DecoderConfig c, WeightSource w, ExportOptions o, ExpertPlan plan, string profile)
{
    public GraphBuilder G => g;
    public DecoderConfig C => c;
    public WeightSource W => w;
    public ExportOptions O => o;
    public ExpertPlan Plan => plan;
    public string Profile => profile;

    /// <summary>Shape(input_ids): [batch, seq].</summary>
    public string BatchSeq { get; set; } = "";

    /// <summary>The RoPE tables and their rows at position_ids (null when no layer rotates).</summary>
    public Rope? Rope { get; set; }

    public Masks Masks { get; } = new();

    /// <summary>A checkpoint tensor name of layer <paramref name="layer"/> from its template.</summary>
    public static string L(string template, int layer, int expert = -1) => TensorNames.Format(template, layer, expert);

    /// <summary>y = x · Wᵀ for the checkpoint's nn.Linear <paramref name="tensor"/> [out, in], in a scope named <paramref name="scope"/>.</summary>
    public string Linear(string scope, string x, string tensor, int outDim, int inDim)
    {
        using (g.Scope(scope)) return w.Linear(x, tensor, outDim, inDim);
    }
}
