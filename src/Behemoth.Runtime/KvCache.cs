using Behemoth.Package;
using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>
/// The keys and values of one sequence, per layer, kept between <see cref="DecoderSession.Forward"/> calls without
/// copying the whole cache on every token:
/// <list type="bullet">
/// <item>layers on GroupQueryAttention (the package's <c>kv_cache</c> says <c>shared_buffer</c>) own one preallocated
/// buffer [1, kv_heads, capacity, head_dim] bound as both past and present, so the kernel appends in place; the
/// buffer doubles (one copy) when a sequence outgrows it.</item>
/// <item>other layers get their present keys from ONNX Runtime as a new tensor that becomes the next past as is
/// (the graph's Concat writes it; no copy here).</item>
/// <item>sliding-window and chunked layers then drop the keys no later query can see, so they hold at most one
/// window or chunk: a stream of any length has bounded memory there. Dropping copies the kept tail once, when a
/// chunk boundary is crossed (every step for a sliding window that is full).</item>
/// </list>
/// </summary>
/// <remarks>
/// One <see cref="DecoderSession.Forward"/> at a time per cache. Disposing it while a Forward runs on it terminates that
/// run and waits for it to leave before the buffers are freed; that Forward, and any later one, throws
/// <see cref="ObjectDisposedException"/>.
/// </remarks>
public sealed class KvCache : IDisposable
{
    private readonly LayerCache[] _layers;
    private readonly int _kvHeads, _headDim, _maxCapacity;
    private readonly NativeLifetime _lifetime = new(exclusive: true);

    internal KvCache(ModelShape shape, IReadOnlyList<LayerKvCache>? layout, int capacity)
    {
        _kvHeads = shape.NumKvHeads;
        _headDim = shape.HeadDim;
        _maxCapacity = shape.ContextLength;
        int initial = Math.Clamp(capacity, 1, _maxCapacity);
        _layers = new LayerCache[shape.NumLayers];
        for (int l = 0; l < shape.NumLayers; l++)
        {
            var info = layout?.FirstOrDefault(x => x.Layer == l);
            _layers[l] = new LayerCache(info?.Attention ?? AttentionKind.Full, info?.Window ?? 0, info?.SharedBuffer ?? false, _kvHeads * _headDim);
            if (_layers[l].Shared) _layers[l].Allocate(_kvHeads, initial, _headDim);
            else _layers[l].SetPast(Empty(), Empty(), 0);
        }
    }

    /// <summary>Positions of the sequence seen so far.</summary>
    public int Length { get; internal set; }

    /// <summary>Bytes of keys and values held now, all layers (0 once disposed).</summary>
    public long Bytes => IsDisposed ? 0 : _layers.Sum(l => l.Bytes);

    /// <summary>True once <see cref="Dispose"/> has freed the cache's buffers.</summary>
    public bool IsDisposed => _lifetime.IsReleased;

    internal bool IsDisposing => _lifetime.IsDisposing;

    /// <summary>Held by a Forward for the whole call, so that the buffers it bound outlive the native run.</summary>
    internal NativeLifetime.Lease Enter() => _lifetime.Enter(this);

    /// <summary>Lets Dispose terminate the run that uses the cache.</summary>
    internal NativeLifetime.Lease Track(RunOptions run) => _lifetime.Track(run);

    /// <summary>Bytes copied inside the cache so far (buffer growth and dropping keys out of a window or chunk).</summary>
    public long BytesCopied { get; private set; }

    /// <summary>Positions layer <paramref name="layer"/> holds keys for (for sliding and chunked layers, at most one window or chunk).</summary>
    public int LayerLength(int layer) => _layers[layer].Shared ? Length : _layers[layer].PastLength;

    internal bool IsShared(int layer) => _layers[layer].Shared;

    /// <summary>The binding the sequence's runs reuse (made by the session that runs it; freed with the cache).</summary>
    internal SequenceBinding? Binding { get; set; }

    internal void Bind(SequenceBinding binding, int layer, int newTotal)
    {
        var c = _layers[layer];
        if (c.Shared)
        {
            if (newTotal > c.Capacity) BytesCopied += c.Grow(_kvHeads, Math.Min(_maxCapacity, Math.Max(newTotal, 2 * c.Capacity)), _headDim, Length);
            binding.BindShared(layer, c.Key!, c.Value!);
            return;
        }
        binding.BindAppending(layer, c.Key!, c.Value!);
    }

    /// <summary>Takes the presents ONNX Runtime allocated for an appending layer (ownership passes to the cache).</summary>
    internal void Accept(int layer, OrtValue presentKey, OrtValue presentValue, int newTotal)
    {
        var c = _layers[layer];
        int held = c.PastLength + (newTotal - Length);       // the graph's Concat: the past, then this run's positions
        int keep = c.Keep(newTotal);
        if (keep >= held)
        {
            c.SetPast(presentKey, presentValue, held);
            return;
        }
        // Drop the keys no later query can see: keep the last `keep` positions of each head.
        var (k, v) = (Tail(presentKey, held, keep), Tail(presentValue, held, keep));
        presentKey.Dispose();
        presentValue.Dispose();
        BytesCopied += 2L * keep * _kvHeads * _headDim * sizeof(float);
        c.SetPast(k, v, keep);
    }

    /// <summary>
    /// Cuts the sequence back to its first <paramref name="length"/> positions, keeping their keys: in place for
    /// GroupQueryAttention buffers (later positions are overwritten), by a copy of the kept part elsewhere. False, and
    /// nothing changed, when a sliding or chunked layer has already dropped keys those positions need (the caller then
    /// runs the sequence again).
    /// </summary>
    internal bool TryTruncate(int length)
    {
        using var lease = Enter();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        if (length == Length) return true;
        foreach (var c in _layers)
            if (!c.Shared && length - c.Keep(length) < Length - c.PastLength) return false;
        foreach (var c in _layers)
        {
            if (c.Shared) continue;
            int held = c.PastLength, first = Length - held, keep = c.Keep(length);
            var k = Slice(c.Key!, held, length - keep - first, keep);
            var v = Slice(c.Value!, held, length - keep - first, keep);
            BytesCopied += 2L * keep * _kvHeads * _headDim * sizeof(float);
            c.SetPast(k, v, keep);
        }
        Length = length;
        return true;
    }

    private OrtValue Slice(OrtValue past, int held, int from, int count)
    {
        var source = past.GetTensorDataAsSpan<float>();
        var part = new float[_kvHeads * count * _headDim];
        for (int h = 0; h < _kvHeads; h++)
            source.Slice((h * held + from) * _headDim, count * _headDim).CopyTo(part.AsSpan(h * count * _headDim));
        return OrtValue.CreateTensorValueFromMemory(part, [1, _kvHeads, count, _headDim]);
    }

    private OrtValue Tail(OrtValue present, int held, int keep)
    {
        var source = present.GetTensorDataAsSpan<float>();
        var tail = new float[_kvHeads * keep * _headDim];
        for (int h = 0; h < _kvHeads; h++)
            source.Slice((h * held + held - keep) * _headDim, keep * _headDim).CopyTo(tail.AsSpan(h * keep * _headDim));
        return OrtValue.CreateTensorValueFromMemory(tail, [1, _kvHeads, keep, _headDim]);
    }

    private OrtValue Empty() => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, _kvHeads, 0, _headDim]);

    /// <summary>
    /// Writes the keys and values held (per layer: the positions held, then keys and values as
    /// [kv_heads, positions, head_dim] floats) for <see cref="Generation.Generator.SaveState(System.IO.Stream)"/>.
    /// </summary>
    internal void WriteTo(BinaryWriter writer)
    {
        using var lease = Enter();
        writer.Write(Length);
        foreach (var c in _layers)
        {
            int held = c.Shared ? Length : c.PastLength, stride = c.Shared ? c.Capacity : c.PastLength;
            writer.Write(held);
            foreach (var tensor in new[] { c.Key!, c.Value! })
            {
                var data = tensor.GetTensorDataAsSpan<float>();
                for (int h = 0; h < _kvHeads; h++)
                    writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.Slice(h * stride * _headDim, held * _headDim)));
            }
        }
    }

    /// <summary>Reads what <see cref="WriteTo"/> wrote into this empty cache; false when the layer lengths cannot be this model's.</summary>
    internal bool ReadFrom(BinaryReader reader)
    {
        using var lease = Enter();
        int length = reader.ReadInt32();
        if (length < 0 || length > _maxCapacity) return false;
        foreach (var c in _layers)
        {
            int held = reader.ReadInt32();
            if (held < 0 || held > length || (c.Shared && held != length)) return false;
            var key = new float[_kvHeads * held * _headDim];
            var value = new float[_kvHeads * held * _headDim];
            reader.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(key.AsSpan()));
            reader.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(value.AsSpan()));
            if (c.Shared)
            {
                if (held > c.Capacity) c.Allocate(_kvHeads, Math.Min(_maxCapacity, Math.Max(held, 2 * c.Capacity)), _headDim);
                var k = c.Key!.GetTensorMutableDataAsSpan<float>();
                var v = c.Value!.GetTensorMutableDataAsSpan<float>();
                for (int h = 0; h < _kvHeads; h++)
                {
                    key.AsSpan(h * held * _headDim, held * _headDim).CopyTo(k[(h * c.Capacity * _headDim)..]);
                    value.AsSpan(h * held * _headDim, held * _headDim).CopyTo(v[(h * c.Capacity * _headDim)..]);
                }
            }
            else
                c.SetPast(OrtValue.CreateTensorValueFromMemory(key, [1, _kvHeads, held, _headDim]),
                          OrtValue.CreateTensorValueFromMemory(value, [1, _kvHeads, held, _headDim]), held);
        }
        Length = length;
        return true;
    }

    /// <summary>
    /// Frees the keys and values; a Forward running on the cache is terminated first and waited for. Idempotent and
    /// thread-safe.
    /// </summary>
    public void Dispose() => _lifetime.Dispose(() =>
    {
        Binding?.Dispose();
        foreach (var l in _layers) l.Dispose();
    });

    private sealed class LayerCache(AttentionKind attention, int window, bool shared, int floatsPerPosition) : IDisposable
    {
        public bool Shared { get; } = shared;
        public OrtValue? Key { get; private set; }
        public OrtValue? Value { get; private set; }
        public int Capacity { get; private set; }
        public int PastLength { get; private set; }
        private float[]? _key, _value;
        private long _bytes;

        public long Bytes => _bytes;

        /// <summary>How many of the last positions a later query can still attend to once the sequence has <paramref name="total"/>.</summary>
        public int Keep(int total) => attention switch
        {
            AttentionKind.Chunked when window > 0 => total % window,            // the next query starts or continues chunk total / window
            AttentionKind.Sliding when window > 0 => Math.Min(total, window - 1),
            _ => total,
        };

        public void Allocate(int kvHeads, int capacity, int headDim)
        {
            _key = new float[kvHeads * capacity * headDim];
            _value = new float[kvHeads * capacity * headDim];
            Replace(OrtValue.CreateTensorValueFromMemory(_key, [1, kvHeads, capacity, headDim]),
                    OrtValue.CreateTensorValueFromMemory(_value, [1, kvHeads, capacity, headDim]));
            Capacity = capacity;
            _bytes = 2L * _key.Length * sizeof(float);
        }

        /// <summary>A bigger shared buffer holding the first <paramref name="length"/> positions of the old one; returns bytes copied.</summary>
        public long Grow(int kvHeads, int capacity, int headDim, int length)
        {
            var (oldKey, oldValue, oldCapacity) = (_key!, _value!, Capacity);
            Allocate(kvHeads, capacity, headDim);
            for (int h = 0; h < kvHeads; h++)
            {
                oldKey.AsSpan(h * oldCapacity * headDim, length * headDim).CopyTo(_key.AsSpan(h * capacity * headDim));
                oldValue.AsSpan(h * oldCapacity * headDim, length * headDim).CopyTo(_value.AsSpan(h * capacity * headDim));
            }
            return 2L * kvHeads * length * headDim * sizeof(float);
        }

        public void SetPast(OrtValue key, OrtValue value, int length)
        {
            Replace(key, value);
            PastLength = length;
            // no shape query (a native call per layer per step): a past holds [1, kv_heads, length, head_dim] floats
            _bytes = 2L * length * floatsPerPosition * sizeof(float);
        }

        private void Replace(OrtValue key, OrtValue value)
        {
            Key?.Dispose();
            Value?.Dispose();
            (Key, Value) = (key, value);
        }

        public void Dispose() => Replace(null!, null!);
    }
}
