using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Formats.Safetensors;

/// <summary>Upcasts stored F32 / F16 / BF16 values to float32, the precision every engine computes in.</summary>
public static class FloatConversion
{
    public static void ToFloat32(ReadOnlySpan<byte> source, SafetensorsDType dtype, Span<float> destination)
    {
        int count = source.Length / dtype.SizeInBytes();
        if (destination.Length < count)
            throw new ArgumentException($"destination holds {destination.Length} floats, {count} needed", nameof(destination));
        switch (dtype)
        {
            case SafetensorsDType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case SafetensorsDType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                break;
            case SafetensorsDType.BF16:
                // bfloat16 is the upper half of a float32: widen by shifting the bits into place.
                var bits = MemoryMarshal.Cast<byte, ushort>(source);
                var wide = MemoryMarshal.Cast<float, uint>(destination);
                for (int i = 0; i < bits.Length; i++) wide[i] = (uint)bits[i] << 16;
                break;
            default:
                throw new BehemothException($"dtype {dtype.Name()} cannot be read as floating point (supported: {SafetensorsDTypes.FloatingNames})");
        }
    }
}
