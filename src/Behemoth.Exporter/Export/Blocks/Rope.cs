using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.Blocks.Ops;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>
/// Rotary position embeddings: cos/sin tables [positions, d/2] written once per package (GroupQueryAttention reads
/// them whole), their rows at position_ids [batch, seq, 1, d/2], and the rotation of q and k.
/// </summary>
internal sealed class Rope
{
    private readonly GraphContext _x;
    private readonly string _cos, _sin;

    private Rope(GraphContext x, string cosTable, string sinTable, string cos, string sin) =>
        (_x, CosTable, SinTable, _cos, _sin) = (x, cosTable, sinTable, cos, sin);

    /// <summary>The tables themselves, [positions, d/2] (GroupQueryAttention's cos_cache / sin_cache).</summary>
    public string CosTable { get; }

    public string SinTable { get; }

    /// <summary>The tables (capped at the export's context) and their rows at position_ids, under <c>/model/rotary_emb</c>.</summary>
    public static Rope Create(GraphContext x)
    {
        var (g, c) = (x.G, x.C);
        int half = c.HeadDim / 2;
        int positions = Math.Min(c.MaxPositionEmbeddings, x.O.MaxContext);
        float[] Table(Func<double, double> f)
        {
            double[] inv = c.Rope.InverseFrequencies(c.HeadDim);
            var table = new float[positions * half];
            for (int p = 0; p < positions; p++)
                for (int i = 0; i < half; i++)
                    table[p * half + i] = (float)f(p * inv[i]);
            return table;
        }
        using var scope = g.Scope("/model/rotary_emb");
        string cosTable = x.W.Add("rope.cos", [positions, half], () => Table(Math.Cos));
        string sinTable = x.W.Add("rope.sin", [positions, half], () => Table(Math.Sin));
        string cos = g.Op("Unsqueeze", [g.Op("Gather", [cosTable, DecoderGraph.PositionIds]), g.Int64Vector(2)]);   // [batch, seq, 1, d/2]
        string sin = g.Op("Unsqueeze", [g.Op("Gather", [sinTable, DecoderGraph.PositionIds]), g.Int64Vector(2)]);
        return new Rope(x, cosTable, sinTable, cos, sin);
    }

    /// <summary>q and k rotated, in a scope <c>rope</c>.</summary>
    public (string Q, string K) Rotate(string q, string k)
    {
        using var scope = _x.G.Scope("rope");
        return (Rotate(q), Rotate(k));
    }

    /// <summary>Rotates [batch, seq, heads, d]: HF rotate_half pairs (i, i + d/2); Llama 4 pairs (2i, 2i + 1).</summary>
    private string Rotate(string x)
    {
        var g = _x.G;
        int d = _x.C.HeadDim, half = d / 2;
        if (_x.C.RopeLayout == RopeLayout.HalfSplit)
        {
            var parts = g.OpMulti("Split", [x, g.Int64Vector(half, half)], 2, Attr(("axis", -1)));
            string a = parts[0], b = parts[1];
            string first = g.Op("Sub", [g.Op("Mul", [a, _cos]), g.Op("Mul", [b, _sin])]);
            string second = g.Op("Add", [g.Op("Mul", [b, _cos]), g.Op("Mul", [a, _sin])]);
            return g.Op("Concat", [first, second], Attr(("axis", -1)));
        }
        // interleaved: view as [..., d/2, 2] and rotate each (even, odd) pair
        string pairs = g.Op("Reshape", [x, g.Int64Vector(0, 0, 0, half, 2)]);
        var split = g.OpMulti("Split", [pairs, g.Int64Vector(1, 1)], 2, Attr(("axis", -1)));
        string re = split[0], im = split[1];
        string cos = g.Op("Unsqueeze", [_cos, g.Int64Vector(-1)]), sin = g.Op("Unsqueeze", [_sin, g.Int64Vector(-1)]);
        string outRe = g.Op("Sub", [g.Op("Mul", [re, cos]), g.Op("Mul", [im, sin])]);
        string outIm = g.Op("Add", [g.Op("Mul", [re, sin]), g.Op("Mul", [im, cos])]);
        return g.Op("Reshape", [g.Op("Concat", [outRe, outIm], Attr(("axis", -1))), g.Int64Vector(0, 0, 0, d)]);
    }
}
