using System.Numerics.Tensors;

namespace Behemoth.Reference.Blocks;

/// <summary>The elementary operations, on row-major float32 buffers. Reductions that set a scale run in double.</summary>
public static class Ops
{
    /// <summary>
    /// RMSNorm over each row of <paramref name="x"/> [rows, n]: y = w ⊙ x / sqrt(mean(x²) + eps)
    /// (HF LlamaRMSNorm; <paramref name="weight"/> empty means no weight, Llama 4's L2 norm).
    /// </summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int n, double eps)
    {
        for (int r = 0; r < x.Length / n; r++)
        {
            var row = x.Slice(r * n, n);
            var dst = y.Slice(r * n, n);
            double sum = 0;
            foreach (float v in row) sum += (double)v * v;
            float scale = (float)(1.0 / Math.Sqrt(sum / n + eps));
            TensorPrimitives.Multiply(row, scale, dst);
            if (!weight.IsEmpty) TensorPrimitives.Multiply(dst, weight, dst);
        }
    }

    /// <summary>
    /// y [rows, outDim] = x [rows, inDim] · Wᵀ (+ b), with W in nn.Linear layout [outDim, inDim].
    /// Large products are split over output rows across cores.
    /// </summary>
    public static unsafe void Linear(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, int inDim, int outDim)
    {
        int rows = x.Length / inDim;
        fixed (float* px = x, pw = w, py = y, pb = bias)
        {
            nint ax = (nint)px, aw = (nint)pw, ay = (nint)py, ab = (nint)pb;
            bool hasBias = !bias.IsEmpty;
            void Rows(int from, int to)
            {
                var xs = new ReadOnlySpan<float>((float*)ax, rows * inDim);
                var ws = new ReadOnlySpan<float>((float*)aw, outDim * inDim);
                var ys = new Span<float>((float*)ay, rows * outDim);
                for (int o = from; o < to; o++)
                {
                    var wRow = ws.Slice(o * inDim, inDim);
                    float b = hasBias ? ((float*)ab)[o] : 0f;
                    for (int r = 0; r < rows; r++)
                        ys[r * outDim + o] = TensorPrimitives.Dot(xs.Slice(r * inDim, inDim), wRow) + b;
                }
            }

            long work = (long)rows * inDim * outDim;
            if (work < 1 << 20 || Environment.ProcessorCount == 1)
            {
                Rows(0, outDim);
                return;
            }
            int chunks = Math.Min(outDim, Environment.ProcessorCount * 4);
            Parallel.For(0, chunks, c => Rows((int)((long)outDim * c / chunks), (int)((long)outDim * (c + 1) / chunks)));
        }
    }

    /// <summary>y [rows, outDim] = x [rows, inDim] · M with M stored [inDim, outDim] (Llama 4's fused expert layout).</summary>
    public static void MatMul(ReadOnlySpan<float> x, ReadOnlySpan<float> m, Span<float> y, int inDim, int outDim)
    {
        int rows = x.Length / inDim;
        y[..(rows * outDim)].Clear();
        for (int r = 0; r < rows; r++)
        {
            var dst = y.Slice(r * outDim, outDim);
            for (int i = 0; i < inDim; i++)
            {
                float xi = x[r * inDim + i];
                if (xi != 0) TensorPrimitives.MultiplyAdd(m.Slice(i * outDim, outDim), xi, dst, dst);
            }
        }
    }

    /// <summary>SwiGLU gating in place: gate = silu(gate) ⊙ up.</summary>
    public static void SiluMul(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            double g = gate[i];
            gate[i] = (float)(g / (1 + Math.Exp(-g))) * up[i];
        }
    }
}
