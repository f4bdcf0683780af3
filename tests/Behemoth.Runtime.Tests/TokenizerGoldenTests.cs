using System.Text;
using System.Text.Json;
using Behemoth.Text;
using static Behemoth.Runtime.Tests.RealTokenizers;

namespace Behemoth.Runtime.Tests;

/// <summary>The ids tests/fixtures/tokenizers/README.md gives, special-token ids, and lossless round trips of real text.</summary>
public class TokenizerGoldenTests
{
    [Theory]
    [InlineData(MistralV1, "sentencepiece", new[] { 1, 22557, 1526 })]
    [InlineData(MistralV3, "sentencepiece", new[] { 1, 23325, 2294 })]
    [InlineData(Llama2, "sentencepiece", new[] { 1, 15043, 3186 })]
    [InlineData(Llama3, "tiktoken", new[] { 9906, 1917 })]
    [InlineData(Llama4, "tiktoken", new[] { 19873, 3817 })]
    [InlineData(Qwen, "tiktoken", new[] { 9707, 1879 })]
    [InlineData(Olmoe, "huggingface-json", new[] { 12092, 1533 })]
    public void Hello_world_encodes_to_the_published_ids(string file, string kind, int[] expected)
    {
        var tok = Get(file);
        Assert.Equal(kind, tok.Kind);
        // The README's SentencePiece ids start with BOS, which the loaded tokenizer leaves to the caller.
        var ids = new List<int>();
        if (kind == "sentencepiece") ids.Add(tok.BosTokenId!.Value);
        ids.AddRange(tok.Tokenizer.EncodeToIds("Hello world"));
        Assert.Equal(expected, ids);
        Assert.Equal("Hello world", tok.Tokenizer.Decode(ids.Skip(kind == "sentencepiece" ? 1 : 0)));
    }

    [Theory]
    [InlineData(Qwen, "<|endoftext|>", 151643)]
    [InlineData(Qwen, "<|im_start|>", 151644)]
    [InlineData(Qwen, "<|im_end|>", 151645)]
    [InlineData(Llama3, "<|begin_of_text|>", 128000)]
    [InlineData(Llama3, "<|start_header_id|>", 128006)]
    [InlineData(Llama3, "<|end_header_id|>", 128007)]
    [InlineData(Llama3, "<|eot_id|>", 128009)]
    [InlineData(Llama4, "<|begin_of_text|>", 200000)]
    [InlineData(Llama4, "<|header_start|>", 200005)]
    [InlineData(Llama4, "<|header_end|>", 200006)]
    [InlineData(Llama4, "<|eot|>", 200008)]
    [InlineData(Olmoe, "<|endoftext|>", 50279)]
    [InlineData(Olmoe, "<|padding|>", 1)]
    [InlineData(MistralV1, "<s>", 1)]
    [InlineData(MistralV1, "</s>", 2)]
    [InlineData(MistralV3, "[INST]", 3)]
    [InlineData(MistralV3, "[/INST]", 4)]
    public void Special_token_in_text_encodes_to_its_single_id(string file, string token, int id)
    {
        var tok = Get(file);
        Assert.Equal(id, tok.SpecialTokenId(token));
        var ids = tok.Tokenizer.EncodeToIds("Hi" + token + "there");
        Assert.Single(ids, i => i == id);
    }

    [Theory]
    [InlineData(Llama3, "llama3/special_tokens.json")]
    [InlineData(Llama4, "llama4/special_tokens.json")]
    public void Llama_special_token_tables_match_special_tokens_json(string file, string table)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(PathOf(table)));
        int id = doc.RootElement.GetProperty("special_tokens_from_id").GetInt32();
        var tok = Get(file);
        int count = 0;
        foreach (var token in doc.RootElement.GetProperty("special_tokens").EnumerateArray())
        {
            Assert.Equal(id++, tok.SpecialTokenId(token.GetString()!));
            count++;
        }
        Assert.Equal(count, tok.SpecialTokens.Count);
        Assert.Equal(doc.RootElement.GetProperty("bos").GetString(), tok.BosToken);
        Assert.Equal(doc.RootElement.GetProperty("eos").GetString(), tok.EosToken);
    }

    [Fact]
    public void Corpus_has_200_texts_in_five_languages() => Assert.Equal(200, Multilingual.Count);

    [Theory]
    [MemberData(nameof(AllFiles))]
    public void Multilingual_corpus_text_round_trips_through_encode_and_decode(string file)
    {
        var tok = Get(file);
        foreach (var text in Multilingual)
        {
            // OLMo's tokenizer normalises to NFC first, so NFC is what it can give back.
            string expected = tok.Kind == "huggingface-json" ? text.Normalize(NormalizationForm.FormC) : text;
            var ids = tok.Tokenizer.EncodeToIds(text);
            Assert.True(ids.Count > 0);
            Assert.Equal(expected, tok.Tokenizer.Decode(ids));
        }
    }

    [Theory]
    [MemberData(nameof(AllFiles))]
    public void Edge_inputs_round_trip(string file)
    {
        var tok = Get(file);
        foreach (var text in new[] { "", " ", "  leading and trailing  ", "a\n\nb\r\n", "tabs\tand\u00a0nbsp", "emoji 😀👍🏽 ok", "数字 12345 ½", "città straße naïve" })
            Assert.Equal(text, tok.Tokenizer.Decode(tok.Tokenizer.EncodeToIds(text)));
    }

    public static TheoryData<string> AllFiles() => new(All);

    /// <summary>The repository's copies are the files of the shared folder, byte for byte, when it is present.</summary>
    [SkippableTheory]
    [MemberData(nameof(AllFiles))]
    public void Tokenizer_file_equals_the_shared_copy(string file)
    {
        string? shared = Behemoth.Tests.TestPaths.Shared is { } s ? Path.Combine(s, "tokenizers", file) : null;
        Skip.If(shared is null || !File.Exists(shared), Behemoth.Tests.TestPaths.SharedMissing + " (or it has no " + file + ")");
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(shared!)),
            System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(PathOf(file))));
    }
}
