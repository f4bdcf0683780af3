using Behemoth.Package;
using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>
/// One sequence's ONNX Runtime IoBinding, kept from run to run so that a decode step rebinds only what changed: the
/// token and its position are written into buffers bound once, the last-row logits land in a buffer bound once, and
/// a GroupQueryAttention layer's cache is rebound only when it grows. What changes every step is still rebound: the
/// attention mask (its length grows) and the layers whose past is the previous step's present.
/// </summary>
/// <remarks>
/// Owned by the <see cref="KvCache"/> (one Forward at a time) and created by the <see cref="DecoderSession"/> that
/// runs it, which frees the bindings it made before its native session (an IoBinding must not outlive its session).
/// </remarks>
internal sealed class SequenceBinding : IDisposable
{
    private readonly long[] _token = new long[1], _position = new long[1];
    private readonly OrtValue _tokenValue, _positionValue;
    private readonly float[] _lastLogits;
    private readonly OrtValue _lastLogitsValue;
    private readonly OrtValue?[] _sharedBound;      // the buffer bound as past and present of each GroupQueryAttention layer
    private OrtValue? _ids, _positions, _mask;       // values made for one run (a prefill's tokens, each run's mask)
    private bool _stepInputsBound, _lastLogitsBound;
    private OrtValue? _keepBound;
    private readonly List<string> _outputOrder = [];
    private readonly HashSet<string> _outputsBound = new(StringComparer.Ordinal);
    private bool _orderConfirmed;
    private int _disposed;

    public SequenceBinding(DecoderSession owner, OrtIoBinding binding, int vocab, int layers)
    {
        Owner = owner;
        Binding = binding;
        _tokenValue = OrtValue.CreateTensorValueFromMemory(_token, [1, 1]);
        _positionValue = OrtValue.CreateTensorValueFromMemory(_position, [1, 1]);
        _lastLogits = new float[vocab];
        _lastLogitsValue = OrtValue.CreateTensorValueFromMemory(_lastLogits, [1, 1, vocab]);
        _sharedBound = new OrtValue?[layers];
    }

    public DecoderSession Owner { get; }

    public OrtIoBinding Binding { get; }

    /// <summary>The last-row logits of the latest run that used <see cref="BindLogits"/> with <c>lastRowOnly</c>.</summary>
    public ReadOnlySpan<float> LastLogits => _lastLogits;

    /// <summary>Binds the tokens of this run and their positions (a single token goes into the buffers bound once).</summary>
    public void BindTokens(ReadOnlySpan<int> tokens, int past)
    {
        if (tokens.Length == 1)
        {
            (_token[0], _position[0]) = (tokens[0], past);
            if (_stepInputsBound) return;
            Binding.BindInput(GraphNames.InputIds, _tokenValue);
            Binding.BindInput(GraphNames.PositionIds, _positionValue);
            _stepInputsBound = true;
            Replace(ref _ids, null);
            Replace(ref _positions, null);
            return;
        }
        var ids = new long[tokens.Length];
        var positions = new long[tokens.Length];
        for (int i = 0; i < tokens.Length; i++) (ids[i], positions[i]) = (tokens[i], past + i);
        var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [1, tokens.Length]);
        var positionsValue = OrtValue.CreateTensorValueFromMemory(positions, [1, tokens.Length]);
        Binding.BindInput(GraphNames.InputIds, idsValue);
        Binding.BindInput(GraphNames.PositionIds, positionsValue);
        // the old values are freed only once the binding no longer names them
        Replace(ref _ids, idsValue);
        Replace(ref _positions, positionsValue);
        _stepInputsBound = false;
    }

    /// <summary>Binds an all-ones mask of <paramref name="total"/> positions (a view of <paramref name="ones"/>).</summary>
    public void BindMask(long[] ones, int total)
    {
        var mask = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<long>(ones, 0, total), [1, total]);
        Binding.BindInput(GraphNames.AttentionMask, mask);
        Replace(ref _mask, mask);
    }

    /// <summary>Binds <c>logits_to_keep</c> (one of two constants: 1, or 0 for every row) when it changes.</summary>
    public void BindKeep(OrtValue keep)
    {
        if (ReferenceEquals(_keepBound, keep)) return;
        Binding.BindInput(GraphNames.LogitsToKeep, keep);
        _keepBound = keep;
    }

    /// <summary>The logits into the buffer bound once ([1, 1, vocab]: the graph computes the last row only), or into
    /// a tensor ONNX Runtime allocates for every row.</summary>
    public void BindLogits(bool lastRowOnly)
    {
        if (lastRowOnly && _lastLogitsBound) return;
        if (lastRowOnly) Binding.BindOutput(GraphNames.Logits, _lastLogitsValue);
        else Binding.BindOutputToDevice(GraphNames.Logits, OrtMemoryInfo.DefaultInstance);
        Bound(GraphNames.Logits);
        _lastLogitsBound = lastRowOnly;
    }

    /// <summary>
    /// After the outputs are taken: a run that returned every row of logits lets go of them here (the binding would
    /// otherwise keep a [tokens, vocab] tensor alive until the next run), and every output is bound again next time.
    /// </summary>
    public void AfterRun()
    {
        if (_lastLogitsBound) return;
        Binding.ClearBoundOutputs();
        Array.Clear(_sharedBound);
        _outputOrder.Clear();
        _outputsBound.Clear();
        _orderConfirmed = false;
    }

    /// <summary>Binds a GroupQueryAttention layer's buffer as its past and present, unless it is bound already.</summary>
    public void BindShared(int layer, OrtValue key, OrtValue value)
    {
        if (ReferenceEquals(_sharedBound[layer], key)) return;
        Binding.BindInput(GraphNames.PastKey(layer), key);
        Binding.BindInput(GraphNames.PastValue(layer), value);
        Binding.BindOutput(GraphNames.PresentKey(layer), key);
        Binding.BindOutput(GraphNames.PresentValue(layer), value);
        Bound(GraphNames.PresentKey(layer));
        Bound(GraphNames.PresentValue(layer));
        _sharedBound[layer] = key;
    }

    /// <summary>Binds an appending layer's past; its presents are allocated by ONNX Runtime for this run.</summary>
    public void BindAppending(int layer, OrtValue pastKey, OrtValue pastValue)
    {
        Binding.BindInput(GraphNames.PastKey(layer), pastKey);
        Binding.BindInput(GraphNames.PastValue(layer), pastValue);
        // bound anew each run: an output left bound from the last run would be reused at its old shape
        Binding.BindOutputToDevice(GraphNames.PresentKey(layer), OrtMemoryInfo.DefaultInstance);
        Binding.BindOutputToDevice(GraphNames.PresentValue(layer), OrtMemoryInfo.DefaultInstance);
        Bound(GraphNames.PresentKey(layer));
        Bound(GraphNames.PresentValue(layer));
    }

    // ONNX Runtime returns outputs in the order their names were first bound (binding a name again keeps its place;
    // clearing the outputs starts over), so the order is kept here rather than read as strings on every run.
    private void Bound(string output)
    {
        if (_outputsBound.Add(output)) _outputOrder.Add(output);
    }

    /// <summary>The names of the outputs in the order <see cref="OrtIoBinding.GetOutputValues"/> returns them; checked
    /// against ONNX Runtime's own list on the first run of each order, and read from it should they ever differ.</summary>
    public IReadOnlyList<string> OutputNames()
    {
        if (_orderConfirmed) return _outputOrder;
        string[] actual = Binding.GetOutputNames();
        if (!actual.SequenceEqual(_outputOrder)) return actual;
        _orderConfirmed = true;
        return _outputOrder;
    }

    private static void Replace(ref OrtValue? slot, OrtValue? value)
    {
        slot?.Dispose();
        slot = value;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Binding.Dispose();
        _tokenValue.Dispose();
        _positionValue.Dispose();
        _lastLogitsValue.Dispose();
        Replace(ref _ids, null);
        Replace(ref _positions, null);
        Replace(ref _mask, null);
        Owner.Forget(this);
    }
}
