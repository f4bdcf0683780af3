using Behemoth.Package;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Formats.Config;

namespace Behemoth.Exporter.Export;

/// <summary>
/// genai_config.json in onnxruntime-genai's layout, so that its generator can load the package's full profile too:
/// the decoder file, its I/O names (past_key_values.%d.key → present.%d.key) and greedy search defaults.
/// </summary>
internal static class GenAiConfig
{
    public static byte[] Create(DecoderConfig c, string graphFile, ExportOptions o)
    {
        int context = Math.Min(c.MaxPositionEmbeddings, o.MaxContext);
        var eos = c.EosTokenIds.Length == 1 ? (JsonNode)c.EosTokenIds[0] : new JsonArray(c.EosTokenIds.Select(i => (JsonNode)i).ToArray());
        var root = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["context_length"] = context,
                ["decoder"] = new JsonObject
                {
                    ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                    ["filename"] = graphFile,
                    ["head_size"] = c.HeadDim,
                    ["hidden_size"] = c.HiddenSize,
                    ["inputs"] = new JsonObject
                    {
                        ["input_ids"] = DecoderGraph.InputIds,
                        ["attention_mask"] = DecoderGraph.AttentionMask,
                        ["position_ids"] = DecoderGraph.PositionIds,
                        ["past_key_names"] = GraphNames.PastKeyPattern,
                        ["past_value_names"] = GraphNames.PastValuePattern,
                    },
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = DecoderGraph.Logits,
                        ["present_key_names"] = GraphNames.PresentKeyPattern,
                        ["present_value_names"] = GraphNames.PresentValuePattern,
                    },
                    ["num_attention_heads"] = c.NumHeads,
                    ["num_hidden_layers"] = c.NumLayers,
                    ["num_key_value_heads"] = c.NumKvHeads,
                },
                ["eos_token_id"] = eos,
                ["pad_token_id"] = c.EosTokenIds.Length > 0 ? c.EosTokenIds[0] : 0,
                // genai picks its model class by type; every Behemoth graph is a plain decoder with a KV cache.
                ["type"] = "llama",
                ["vocab_size"] = c.VocabSize,
            },
            ["search"] = new JsonObject
            {
                ["do_sample"] = false,
                ["max_length"] = context,
                ["min_length"] = 0,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["past_present_share_buffer"] = false,   // the graph concatenates past and present keys
                ["repetition_penalty"] = 1.0,
                ["temperature"] = 1.0,
                ["top_k"] = 1,
                ["top_p"] = 1.0,
            },
        };
        // genai wants numbers here: a model without a beginning-of-sequence token leaves the key out
        if (c.BosTokenId is int bos) root["model"]!.AsObject().Insert(0, "bos_token_id", bos);
        if (c.EosTokenIds.Length == 0) root["model"]!.AsObject().Remove("eos_token_id");
        return JsonSerializer.SerializeToUtf8Bytes(root, new JsonSerializerOptions { WriteIndented = true });
    }
}
