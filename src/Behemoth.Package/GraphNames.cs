namespace Behemoth.Package;

/// <summary>
/// The decoder graph's input and output names, onnxruntime-genai's conventions (genai_config.json,
/// <c>past_key_values.%d.key</c> → <c>present.%d.key</c>): written by the exporter, bound by the runtime, spelled here once.
/// </summary>
public static class GraphNames
{
    /// <summary>int64 [batch, sequence]: the new tokens.</summary>
    public const string InputIds = "input_ids";

    /// <summary>int64 [batch, past + sequence]: 1 for every position seen.</summary>
    public const string AttentionMask = "attention_mask";

    /// <summary>int64 [batch, sequence]: the absolute positions of the new tokens.</summary>
    public const string PositionIds = "position_ids";

    /// <summary>float [batch, rows, vocab]: every position's logits, or the last <see cref="LogitsToKeep"/> ones.</summary>
    public const string Logits = "logits";

    /// <summary>
    /// Optional int64 [1], Hugging Face's <c>logits_to_keep</c>: only the last N positions go through lm_head (1 when
    /// generating); 0, its default, keeps every position, so a runtime that does not know it gets all of them.
    /// </summary>
    public const string LogitsToKeep = "logits_to_keep";

    /// <summary>genai_config.json's name patterns for the per-layer cache inputs and outputs.</summary>
    public const string PastKeyPattern = "past_key_values.%d.key", PastValuePattern = "past_key_values.%d.value",
        PresentKeyPattern = "present.%d.key", PresentValuePattern = "present.%d.value";

    // the runtime binds these every step: made once, not per call
    private static readonly string[] PastKeys = Make(PastKeyPattern), PastValues = Make(PastValuePattern),
        PresentKeys = Make(PresentKeyPattern), PresentValues = Make(PresentValuePattern);

    /// <summary>Layer <paramref name="layer"/>'s cached keys in.</summary>
    public static string PastKey(int layer) => Name(PastKeys, PastKeyPattern, layer);

    /// <summary>Layer <paramref name="layer"/>'s cached values in.</summary>
    public static string PastValue(int layer) => Name(PastValues, PastValuePattern, layer);

    /// <summary>Layer <paramref name="layer"/>'s keys out (past and new).</summary>
    public static string PresentKey(int layer) => Name(PresentKeys, PresentKeyPattern, layer);

    /// <summary>Layer <paramref name="layer"/>'s values out (past and new).</summary>
    public static string PresentValue(int layer) => Name(PresentValues, PresentValuePattern, layer);

    private static string[] Make(string pattern) => [.. Enumerable.Range(0, 256).Select(l => pattern.Replace("%d", l.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal))];

    private static string Name(string[] cached, string pattern, int layer) =>
        (uint)layer < (uint)cached.Length ? cached[layer] : pattern.Replace("%d", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
}
