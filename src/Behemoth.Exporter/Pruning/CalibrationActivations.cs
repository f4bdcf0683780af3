using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>A named set of calibration token sequences (one domain's text, tokenized by the caller).</summary>
public sealed record CalibrationDomain(string Name, IReadOnlyList<int[]> Sequences, IReadOnlyList<string> Sources);

/// <summary>
/// Each MoE layer's inputs over a calibration set, [tokens, hidden] per layer, from one pass of the reference engine
/// (which reads weights per layer from the checkpoint, so the model never has to fit in memory; these activations,
/// tokens × hidden × MoE layers floats, do).
/// </summary>
public sealed class CalibrationActivations
{
    private CalibrationActivations(Dictionary<int, float[]> inputs, int tokens) => (Inputs, Tokens) = (inputs, tokens);

    /// <summary>Per MoE layer, its inputs [Tokens, hidden].</summary>
    public IReadOnlyDictionary<int, float[]> Inputs { get; }

    public int Tokens { get; }

    public static CalibrationActivations Collect(ReferenceModel model, IEnumerable<int[]> sequences, CancellationToken cancellationToken = default)
    {
        int h = model.Config.HiddenSize;
        var parts = new Dictionary<int, List<float[]>>();
        int tokens = 0;
        foreach (var seq in sequences)
        {
            if (seq.Length == 0) continue;
            model.Forward(seq, null, (layer, x) =>
            {
                if (!parts.TryGetValue(layer, out var list)) parts[layer] = list = [];
                list.Add(x.ToArray());
            }, cancellationToken);
            tokens += seq.Length;
        }
        if (tokens == 0) throw new BehemothException("the calibration text holds no tokens");
        var inputs = parts.ToDictionary(p => p.Key, p =>
        {
            var all = new float[(long)tokens * h];
            int at = 0;
            foreach (var part in p.Value)
            {
                part.CopyTo(all, at);
                at += part.Length;
            }
            return all;
        });
        return new CalibrationActivations(inputs, tokens);
    }
}
