using System.Buffers;
using System.Runtime.InteropServices;
using Behemoth.Formats.Checkpoints;
using Behemoth.Formats.Safetensors;

namespace Behemoth.Reference;

/// <summary>
/// float32 access to checkpoint tensors without loading the checkpoint. F32 tensors are read in place from
/// the memory mapping; F16 / BF16 ones are upcast into a pooled buffer that lives as long as the view.
/// </summary>
internal readonly ref struct FloatView
{
    private readonly float[]? _rented;

    public FloatView(CheckpointTensor tensor, long start, int count)
    {
        if (tensor.Entry.DType == SafetensorsDType.F32)
        {
            Span = MemoryMarshal.Cast<byte, float>(tensor.File.GetBytes(tensor.Entry, start * 4, (long)count * 4));
            _rented = null;
        }
        else
        {
            _rented = ArrayPool<float>.Shared.Rent(count);
            tensor.ReadFloat32(_rented.AsSpan(0, count), start);
            Span = _rented.AsSpan(0, count);
        }
    }

    public ReadOnlySpan<float> Span { get; }

    public void Dispose()
    {
        if (_rented is not null) ArrayPool<float>.Shared.Return(_rented);
    }
}

/// <summary>The checked tensors of one model, by Hugging Face name.</summary>
internal sealed class Weights(IReadOnlyDictionary<string, CheckpointTensor> tensors)
{
    public CheckpointTensor this[string name] => tensors[name];

    /// <summary>The whole tensor as float32.</summary>
    public FloatView View(string name)
    {
        var t = tensors[name];
        if (t.Entry.ElementCount > int.MaxValue)
            throw new Formats.Errors.CheckpointFormatException(t.File.Path,
                $"{t.Entry.ElementCount} elements is more than the reference engine reads in one piece ({int.MaxValue})", name);
        return new FloatView(t, 0, (int)t.Entry.ElementCount);
    }

    /// <summary>Slice <paramref name="index"/> along the first dimension (one expert of a fused [experts, …] tensor).</summary>
    public FloatView Slice(string name, int index)
    {
        var t = tensors[name];
        int size = checked((int)(t.Entry.ElementCount / t.Shape[0]));
        return new FloatView(t, (long)index * size, size);
    }
}
