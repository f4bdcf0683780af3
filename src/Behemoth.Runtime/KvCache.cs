using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>The keys and values of the positions seen so far, per layer, as [1, kv_heads, length, head_dim].</summary>
public sealed class KvCache
{
    private readonly float[][] _keys, _values;
    private readonly int _kvHeads, _headDim;

    internal KvCache(int layers, int kvHeads, int headDim)
    {
        _kvHeads = kvHeads;
        _headDim = headDim;
        _keys = Enumerable.Range(0, layers).Select(_ => Array.Empty<float>()).ToArray();
        _values = Enumerable.Range(0, layers).Select(_ => Array.Empty<float>()).ToArray();
    }

    /// <summary>Positions held.</summary>
    public int Length { get; internal set; }

    internal OrtValue Value(int layer, bool key) =>
        OrtValue.CreateTensorValueFromMemory(key ? _keys[layer] : _values[layer], [1, _kvHeads, Length, _headDim]);

    internal void Update(int layer, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int length)
    {
        long expected = (long)_kvHeads * length * _headDim;
        if (keys.Length != expected || values.Length != expected)
            throw new InvalidOperationException($"layer {layer}: the graph returned {keys.Length} cached key floats, expected {expected}");
        _keys[layer] = keys.ToArray();
        _values[layer] = values.ToArray();
    }
}
