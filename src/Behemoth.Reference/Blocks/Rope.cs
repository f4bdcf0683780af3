using Behemoth.Formats.Config;

namespace Behemoth.Reference.Blocks;

/// <summary>Rotary position embedding tables for positions 0..T-1, and their application to q / k heads.</summary>
internal sealed class Rope
{
    private readonly float[] _cos, _sin;
    private readonly int _half;
    private readonly RopeLayout _layout;

    public Rope(RopeConfig config, RopeLayout layout, int headDim, int positions)
    {
        _half = headDim / 2;
        _layout = layout;
        double[] inv = config.InverseFrequencies(headDim);
        _cos = new float[positions * _half];
        _sin = new float[positions * _half];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < _half; i++)
            {
                double angle = p * inv[i];
                _cos[p * _half + i] = (float)Math.Cos(angle);
                _sin[p * _half + i] = (float)Math.Sin(angle);
            }
    }

    /// <summary>Rotates every head of x [T, heads·headDim] in place by its row's position.</summary>
    public void Apply(Span<float> x, int heads)
    {
        int headDim = 2 * _half;
        int rows = x.Length / (heads * headDim);
        for (int t = 0; t < rows; t++)
        {
            var cos = _cos.AsSpan(t * _half, _half);
            var sin = _sin.AsSpan(t * _half, _half);
            for (int h = 0; h < heads; h++)
            {
                var v = x.Slice((t * heads + h) * headDim, headDim);
                for (int i = 0; i < _half; i++)
                {
                    // HF rotate_half pairs (i, i + d/2); Llama 4's view_as_complex pairs (2i, 2i + 1).
                    int a = _layout == RopeLayout.HalfSplit ? i : 2 * i;
                    int b = _layout == RopeLayout.HalfSplit ? i + _half : 2 * i + 1;
                    float x1 = v[a], x2 = v[b];
                    v[a] = x1 * cos[i] - x2 * sin[i];
                    v[b] = x2 * cos[i] + x1 * sin[i];
                }
            }
        }
    }
}
