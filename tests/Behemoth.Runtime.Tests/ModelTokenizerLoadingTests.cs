using Behemoth.Package;
using Behemoth.Text;
using Behemoth.Tests;
using static Behemoth.Runtime.Tests.RealTokenizers;

namespace Behemoth.Runtime.Tests;

/// <summary>How ModelTokenizer finds and recognises the tokenizer of a model directory or package.</summary>
public class ModelTokenizerLoadingTests
{
    private static string Copy(TempDirectory dir, string sharedFile, string name)
    {
        File.Copy(PathOf(sharedFile), dir.File(name));
        return dir.File(name);
    }

    [Fact]
    public void Tiktoken_ranks_named_tokenizer_model_load_as_tiktoken_not_sentencepiece()
    {
        using var dir = new TempDirectory();
        Copy(dir, Llama4, "tokenizer.model");
        var tok = ModelTokenizer.Open(dir.Path);
        Assert.Equal(TokenizerKinds.Tiktoken, tok.Kind);
        Assert.Equal("llama4", tok.Family);
        Assert.Equal([19873, 3817], tok.Tokenizer.EncodeToIds("Hello world"));
    }

    [Fact]
    public void A_dot_tiktoken_file_loads_with_the_family_found_from_its_rank_count()
    {
        using var dir = new TempDirectory();
        Copy(dir, Qwen, "qwen.tiktoken");
        var tok = ModelTokenizer.Open(dir.Path);
        Assert.Equal("qwen", tok.Family);
        Assert.Equal("<|endoftext|>", tok.EosToken);
        Assert.Equal([9707, 1879], tok.Tokenizer.EncodeToIds("Hello world"));
    }

    [Fact]
    public void Tokenizer_config_added_tokens_replace_the_family_defaults()
    {
        using var dir = new TempDirectory();
        Copy(dir, Qwen, "qwen.tiktoken");
        File.WriteAllText(dir.File("tokenizer_config.json"), """
            {"added_tokens_decoder": {
              "151643": {"content": "<|endoftext|>", "special": true},
              "151644": {"content": "<|im_start|>", "special": true},
              "151645": {"content": "<|im_end|>", "special": true},
              "151646": {"content": "<|object_ref_start|>", "special": true}},
             "bos_token": null, "eos_token": "<|im_end|>"}
            """);
        var tok = ModelTokenizer.Open(dir.Path);
        Assert.Equal(151646, tok.SpecialTokenId("<|object_ref_start|>"));
        Assert.Equal([9707, 151646, 1879], tok.Tokenizer.EncodeToIds("Hello<|object_ref_start|> world"));
        Assert.Equal("<|im_end|>", tok.EosToken);
        Assert.Equal(151645, tok.EosTokenId);
    }

    [Fact]
    public void Sentencepiece_tokenizer_model_wins_over_tokenizer_json()
    {
        using var dir = new TempDirectory();
        Copy(dir, MistralV1, "tokenizer.model");
        Copy(dir, Olmoe, "tokenizer.json");
        var tok = ModelTokenizer.Open(dir.Path);
        Assert.Equal(TokenizerKinds.SentencePiece, tok.Kind);
        Assert.Equal(1, tok.BosTokenId);
        Assert.Equal(2, tok.EosTokenId);
    }

    [Fact]
    public void Tokenizer_json_alone_loads_as_byte_level_bpe()
    {
        using var dir = new TempDirectory();
        Copy(dir, Olmoe, "tokenizer.json");
        var tok = ModelTokenizer.Open(dir.Path);
        Assert.Equal(TokenizerKinds.HuggingFaceJson, tok.Kind);
        Assert.Equal(50279, tok.EosTokenId);
        Assert.Equal([12092, 1533], ModelTokenizer.Load(dir.Path).EncodeToIds("Hello world"));
    }

    [Fact]
    public void Merges_written_as_pairs_give_the_same_ids_as_merges_written_as_strings()
    {
        using var dir = new TempDirectory();
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(PathOf(Olmoe)))!;
        var merges = json["model"]!["merges"]!.AsArray();
        var pairs = new System.Text.Json.Nodes.JsonArray();
        foreach (var m in merges)
        {
            var parts = m!.GetValue<string>().Split(' ');
            pairs.Add(new System.Text.Json.Nodes.JsonArray(parts[0], parts[1]));
        }
        json["model"]!["merges"] = pairs;
        File.WriteAllText(dir.File("tokenizer.json"), json.ToJsonString());
        var tok = ModelTokenizer.Load(dir.Path);
        const string text = "Nel mezzo del cammin di nostra vita mi ritrovai per una selva oscura.";
        Assert.Equal(Get(Olmoe).Tokenizer.EncodeToIds(text), tok.EncodeToIds(text));
    }

    [Fact]
    public void Runs_of_spaces_use_the_longest_added_whitespace_token_first()
    {
        // OLMo's added tokens 50254..50276 are runs of 24 down to 2 spaces, matched leftmost-longest as Hugging Face does.
        var ids = Get(Olmoe).Tokenizer.EncodeToIds("x" + new string(' ', 30) + "y");
        Assert.Equal([89, 50254, 50272, 90], ids);
    }

    [Fact]
    public void The_behemoth_nano_model_directory_loads_its_sentencepiece_tokenizer()
    {
        string nano = Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano");
        var tok = ModelTokenizer.Open(nano);
        Assert.Equal(TokenizerKinds.SentencePiece, tok.Kind);
        Assert.Equal(1, tok.BosTokenId);
        Assert.Equal(2, tok.EosTokenId);
        const string text = "Il gatto dorme sul divano.";
        Assert.Equal(text, tok.Tokenizer.Decode(tok.Tokenizer.EncodeToIds(text)));
        Assert.Equal("plain", ChatTemplate.ForDirectory(nano, tok).Name);
    }

    [Fact]
    public void A_directory_without_tokenizer_files_names_the_files_it_looked_for()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<FileNotFoundException>(() => ModelTokenizer.Open(dir.Path));
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void A_tokenizer_model_that_is_not_a_protobuf_is_reported_with_its_path()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("tokenizer.model"), [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x02]);
        var e = Assert.Throws<TokenizerFormatException>(() => ModelTokenizer.Open(dir.Path));
        Assert.Equal(dir.File("tokenizer.model"), e.Path);
        Assert.Contains("SentencePiece", e.Message);
    }

    [Fact]
    public void Tiktoken_ranks_of_an_unknown_vocabulary_size_are_refused_with_the_known_sizes()
    {
        using var dir = new TempDirectory();
        File.WriteAllLines(dir.File("small.tiktoken"), File.ReadLines(PathOf(Llama3)).Take(1000));
        var e = Assert.Throws<TokenizerFormatException>(() => ModelTokenizer.Open(dir.Path));
        Assert.Contains("1,000 tiktoken ranks", e.Message);
        Assert.Contains("128,000", e.Message);
    }

    [Theory]
    [InlineData("""{"model": {"type": "Unigram", "vocab": []}}""", "Unigram")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}}""", "Metaspace")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": null}""", "not byte-level")]
    [InlineData("""{"normalizer": null}""", "no \"model\"")]
    [InlineData("""{"model": """, "not valid JSON")]
    public void Unsupported_or_malformed_tokenizer_json_is_refused_with_the_reason(string json, string reason)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("tokenizer.json"), json);
        var e = Assert.Throws<TokenizerFormatException>(() => ModelTokenizer.Open(dir.Path));
        Assert.Contains(reason, e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void Exporter_kind_detection_tells_tiktoken_from_sentencepiece_by_content()
    {
        using var dir = new TempDirectory();
        Copy(dir, Llama3, "tokenizer.model");
        Assert.Equal(TokenizerKinds.Tiktoken, TokenizerKinds.Detect(dir.Path, ["tokenizer.model", "tokenizer_config.json"]));
        File.Delete(dir.File("tokenizer.model"));
        Copy(dir, Llama2, "tokenizer.model");
        Assert.Equal(TokenizerKinds.SentencePiece, TokenizerKinds.Detect(dir.Path, ["tokenizer.model", "tokenizer.json"]));
        Assert.Equal(TokenizerKinds.Tiktoken, TokenizerKinds.Detect(dir.Path, ["qwen.tiktoken", "tokenizer_config.json"]));
        Assert.Equal(TokenizerKinds.HuggingFaceJson, TokenizerKinds.Detect(dir.Path, ["tokenizer.json"]));
    }
}
