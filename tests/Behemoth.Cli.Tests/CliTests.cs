using System.Diagnostics;
using System.Text.Json.Nodes;
using Behemoth.Tests;

namespace Behemoth.Cli.Tests;

/// <summary>The built <c>behemoth</c> program, run as a user runs it.</summary>
public sealed class CliTests
{
    private sealed record Result(int ExitCode, string Stdout, string Stderr);

    private static Result Run(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "behemoth.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void Inspect_json_reports_mixtral_8x7b()
    {
        var r = Run("inspect", TestPaths.Config("Mixtral-8x7B-v0.1.json"), "--json");
        Assert.Equal(0, r.ExitCode);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(46_702_792_704, json["total_parameters"]!.GetValue<long>());
        Assert.Equal(12_879_925_248, json["active_parameters"]!.GetValue<long>());
        Assert.Equal(32, json["layers"]!.GetValue<int>());
        Assert.Equal(8, json["experts"]!.GetValue<int>());
        Assert.Equal(2, json["top_k"]!.GetValue<int>());
        Assert.Equal(2 * 176_160_768L, json["bytes_per_expert"]!["fp16"]!.GetValue<long>());
    }

    [Fact]
    public void Inspect_text_accepts_a_model_directory()
    {
        var r = Run("inspect", TestPaths.Golden("llama4"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Llama4ForCausalLM", r.Stdout);
        Assert.Contains("top-1", r.Stdout);
    }

    [Fact]
    public void Logits_writes_the_golden_layout_and_checks_it()
    {
        using var dir = new TempDirectory();
        string golden = TestPaths.Golden("qwen2_moe");
        string output = dir.File("logits.f32");
        var r = Run("logits", golden, "--tokens-file", Path.Combine(golden, "input_ids.json"), "--out", output,
            "--expect", Path.Combine(golden, "logits.f32"));
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Equal(24 * 512 * 4, new FileInfo(output).Length);
        Assert.Contains("match", r.Stdout);
    }

    [Fact]
    public void Logits_with_inline_tokens_and_a_failed_expectation_exits_2()
    {
        using var dir = new TempDirectory();
        string golden = TestPaths.Golden("mixtral");
        // Different tokens than the golden run: the comparison must fail (exit 2), not silently pass.
        var r = Run("logits", golden, "--tokens", string.Join(' ', Enumerable.Range(1, 24)), "--out", dir.File("l.f32"),
            "--expect", Path.Combine(golden, "logits.f32"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("MISMATCH", r.Stdout);
    }

    [Fact]
    public void Corrupt_checkpoint_gives_one_line_without_a_stack_trace()
    {
        using var dir = new TempDirectory();
        string golden = TestPaths.Golden("mixtral");
        File.Copy(Path.Combine(golden, "config.json"), dir.File("config.json"));
        byte[] weights = File.ReadAllBytes(Path.Combine(golden, "model.safetensors"));
        File.WriteAllBytes(dir.File("model.safetensors"), weights[..^100]);
        string output = dir.File("out.f32");

        var r = Run("logits", dir.Path, "--tokens", "1 2 3", "--out", output);
        Assert.Equal(1, r.ExitCode);
        string line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains("model.safetensors", line);
        Assert.Contains("file truncated?", line);
        Assert.False(File.Exists(output));

        var verbose = Run("logits", dir.Path, "--tokens", "1 2 3", "--out", output, "--verbose");
        Assert.Equal(1, verbose.ExitCode);
        Assert.Contains("   at ", verbose.Stderr);
    }

    [Theory]
    [InlineData("{\"architectures\": [\"GPT2LMHeadModel\"]}", "unsupported architecture 'GPT2LMHeadModel'")]
    [InlineData("{\"architectures\": [\"MixtralForCausalLM\"], \"vocab_size\": 32000}", "field 'hidden_size': required field is missing")]
    [InlineData("{\"architectures\": [\"MixtralForCausalLM\"], \"hidden_size\": \"big\"}", "field 'hidden_size': expected an integer")]
    [InlineData("not json", "not valid JSON")]
    [InlineData("{\"architectures\": [\"\\ud800\"]}", "not valid Unicode")]
    [InlineData("{\"architectures\": [\"MixtralForCausalLM\"], \"hidden_size\": [\n 64\n]}", "expected an integer, found array [ 64 ]")]
    [InlineData("{\"architectures\": [\"MixtralForCausalLM\"], \"vocab_size\": 32000, \"hidden_size\": 64, \"num_attention_heads\": 4, \"intermediate_size\": 16, \"num_hidden_layers\": 2147483647}", "beyond any real model")]
    public void Bad_configs_are_explained(string config, string expected)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), config);
        var r = Run("inspect", dir.Path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Contains("config.json", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    [Fact]
    public void Bad_token_lists_are_explained()
    {
        var r = Run("logits", TestPaths.Golden("olmoe"), "--tokens", "1 two 3", "--out", "/tmp/never.f32");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("'two' is not a non-negative integer token id", r.Stderr);
        Assert.False(File.Exists("/tmp/never.f32"));
    }

    [Fact]
    public void A_bad_expectation_or_empty_token_list_leaves_no_output()
    {
        using var dir = new TempDirectory();
        string output = dir.File("out.f32");
        var r = Run("logits", TestPaths.Golden("mixtral"), "--tokens", "1", "--out", output, "--expect", dir.File("absent.f32"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--expect", r.Stderr);
        Assert.False(File.Exists(output));

        File.WriteAllText(dir.File("ids.json"), "[]");
        r = Run("logits", TestPaths.Golden("mixtral"), "--tokens-file", dir.File("ids.json"), "--out", output);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no token ids given", r.Stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Help_lists_the_commands()
    {
        var r = Run("--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("inspect", r.Stdout);
        Assert.Contains("logits", r.Stdout);
    }

    [Fact]
    public void Help_on_a_command_prints_its_options_on_stdout()
    {
        var r = Run("export", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("--quant", r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    /// <summary>A parse error: exit 1 (bad input), one line on stderr, nothing on stdout (no help text).</summary>
    private static string AssertParseError(Result r)
    {
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stdout}{r.Stderr}");
        Assert.Equal("", r.Stdout);
        string line = Assert.Single(r.Stderr.TrimEnd().Split('\n'));
        Assert.StartsWith("error: ", line);
        return line;
    }

    [Fact]
    public void An_unknown_command_is_one_line_suggesting_the_closest()
    {
        string line = AssertParseError(Run("exprot"));
        Assert.Contains("unknown command 'exprot'", line);
        Assert.Contains("did you mean 'export'?", line);

        line = AssertParseError(Run("frobnicate"));       // nothing close: no suggestion
        Assert.Contains("unknown command 'frobnicate'", line);
        Assert.DoesNotContain("did you mean", line);
    }

    [Fact]
    public void An_unknown_option_is_one_line_suggesting_the_closest()
    {
        using var dir = new TempDirectory();
        string line = AssertParseError(Run("export", TestPaths.Golden("mixtral"), "--out", dir.File("pkg"), "--quantt", "int4"));
        Assert.Contains("unknown option '--quantt'", line);
        Assert.Contains("did you mean '--quant'?", line);
        Assert.False(Directory.Exists(dir.File("pkg")));

        // before the positional argument, where the parser would take it for the model path
        line = AssertParseError(Run("export", "--quantt", "int4", TestPaths.Golden("mixtral"), "--out", dir.File("pkg")));
        Assert.Contains("did you mean '--quant'?", line);
    }

    [Fact]
    public void A_bad_value_is_one_line_naming_the_option_and_the_choices()
    {
        using var dir = new TempDirectory();
        string line = AssertParseError(Run("export", TestPaths.Golden("mixtral"), "--out", dir.File("pkg"), "--quant", "int3"));
        Assert.Contains("--quant 'int3' is not one of fp32, fp16, int8, int4", line);
        Assert.False(Directory.Exists(dir.File("pkg")));

        line = AssertParseError(Run("run", dir.File("pkg"), "--prompt", "hi", "--max-tokens", "many"));
        Assert.Contains("--max-tokens 'many' is not a whole number", line);
    }

    [Fact]
    public void A_missing_argument_or_option_is_one_line()
    {
        Assert.Contains("missing argument <model>", AssertParseError(Run("export")));
        Assert.Contains("missing option --out", AssertParseError(Run("export", TestPaths.Golden("mixtral"))));
        Assert.Contains("no command given", AssertParseError(Run()));
    }

    [Fact]
    public void Export_then_onnx_logits_reproduce_the_golden_logits_and_a_tampered_package_is_refused()
    {
        using var dir = new TempDirectory();
        string golden = TestPaths.Golden("olmoe");
        string package = dir.File("pkg");
        var r = Run("export", golden, "--out", package, "--quant", "fp32");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("profile full: 8 routed experts", r.Stdout);   // 4 experts × 2 MoE layers

        string[] logits = ["logits", package, "--engine", "onnx", "--tokens-file", Path.Combine(golden, "input_ids.json"),
            "--out", dir.File("o.f32"), "--expect", Path.Combine(golden, "logits.f32")];
        r = Run(logits);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        r = Run([.. logits, "--incremental"]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        r = Run("export", golden, "--out", package);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--force", r.Stderr);

        using (var f = new FileStream(Path.Combine(package, "weights.bin"), FileMode.Open)) f.SetLength(f.Length - 1);
        r = Run(logits);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: ", r.Stderr);
        Assert.Contains("weights.bin", r.Stderr);
    }

    [Fact]
    public void Export_layers_writes_a_model_of_the_first_layers_and_refuses_a_count_outside_the_model()
    {
        using var dir = new TempDirectory();
        var r = Run("export", TestPaths.Golden("qwen2_moe"), "--out", dir.File("pkg"), "--layers", "1");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("profile full: 4 routed experts", r.Stdout);   // 4 experts × 1 MoE layer
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("pkg"), "manifest.json")))!;
        Assert.Equal(1, manifest["model"]!["num_hidden_layers"]!.GetValue<int>());

        r = Run("export", TestPaths.Golden("qwen2_moe"), "--out", dir.File("pkg2"), "--layers", "3");
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: --layers 3", r.Stderr);
        Assert.Contains("1 to 2", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.False(Directory.Exists(dir.File("pkg2")));
    }

    [Fact]
    public void Export_explains_a_block_size_the_moe_kernel_cannot_use()
    {
        using var dir = new TempDirectory();
        var r = Run("export", TestPaths.Golden("mixtral"), "--out", dir.File("pkg"), "--quant", "int4", "--block-size", "32");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--block-size", r.Stderr);
        Assert.False(Directory.Exists(dir.File("pkg")));
        r = Run("export", TestPaths.Golden("mixtral"), "--out", dir.File("pkg"), "--quant", "int4", "--block-size", "24");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("power of two", r.Stderr);
    }

    [Fact]
    public void Bench_reports_speed_memory_and_bytes_read_as_json()
    {
        using var dir = new TempDirectory();
        Assert.Equal(0, Run("export", TestPaths.Golden("qwen3_moe"), "--out", dir.File("pkg")).ExitCode);
        var r = Run("bench", dir.File("pkg"), "--prompt-tokens", "8", "--decode-tokens", "4", "--runs", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("full", json["profile"]!.GetValue<string>());
        Assert.True(json["prefill_tokens_per_second"]!.GetValue<double>() > 0);
        Assert.True(json["decode_tokens_per_second"]!.GetValue<double>() > 0);
        Assert.True(json["time_to_first_token_seconds"]!.GetValue<double>() > 0);
        long weights = json["profile_weight_bytes"]!.GetValue<long>();
        Assert.InRange(json["bytes_read_during_load"]!.GetValue<long>(), weights, weights + 2_000_000);
        Assert.True(json["peak_rss_bytes"]!.GetValue<long>() > json["baseline_rss_bytes"]!.GetValue<long>());
    }

    [Fact]
    public void A_memory_budget_no_profile_fits_is_refused_with_each_profiles_needs()
    {
        using var dir = new TempDirectory();
        Assert.Equal(0, Run("export", TestPaths.Golden("qwen3_moe"), "--out", dir.File("pkg")).ExitCode);
        var r = Run("bench", dir.File("pkg"), "--memory-budget", "10KB", "--runs", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no profile fits a memory budget of 0.0 MB", r.Stderr);
        Assert.Contains("full ", r.Stderr);
        Assert.Contains("KV cache", r.Stderr);
        r = Run("run", dir.File("pkg"), "--memory-budget", "lots", "--prompt", "x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("memory size 'lots' is not valid", r.Stderr);
    }
}
