using System.Text.Json.Nodes;
using Behemoth.Exporter.Export;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Tests;
using Behemoth.Text;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// The chat template comes from the model's own chat_template when it is a supported family, recognised by the
/// template itself (not guessed from model_type); an unknown one falls back with a notice, or is refused on request.
/// </summary>
public sealed class ChatTemplateDetectionTests
{
    [Theory]
    [InlineData("mistral_v1.jinja", "mistral-v1")]
    [InlineData("mistral_v3.jinja", "mistral-v3")]
    [InlineData("mistral_v7.jinja", "mistral-v7")]
    public void Mistral_templates_are_told_apart_by_what_they_write(string file, string expected)
    {
        string source = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "tests", "fixtures", "tokenizers", "chat_templates", file));
        Assert.Equal(expected, ChatTemplate.Recognize(source)?.Name);
    }

    [Theory]
    [InlineData("{{ '<|header_start|>' + message['role'] + '<|header_end|>\\n\\n' }}", "llama4")]
    [InlineData("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}", "llama3")]
    [InlineData("{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}", "chatml")]
    [InlineData("{%- if enable_thinking is defined %}{{'<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n'}}{%- endif %}", "chatml-qwen3")]
    [InlineData("{{ '<|user|>\\n' + message['content'] }}{{ '<|assistant|>\\n' }}", "olmoe")]
    public void Each_family_is_recognised_by_its_markers(string source, string expected) =>
        Assert.Equal(expected, ChatTemplate.Recognize(source)?.Name);

    [Fact]
    public void An_unknown_template_is_not_guessed() =>
        Assert.Null(ChatTemplate.Recognize("{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}"));

    [Fact]
    public void A_package_s_own_template_chooses_and_an_unknown_one_falls_back_with_a_notice_or_is_refused()
    {
        using var temp = new TempDirectory();
        string Export(string name, string template)
        {
            // behemoth-nano with a tokenizer_config.json carrying a chat_template (its model_type alone gives "plain")
            string model = temp.File(name + "-model");
            Directory.CreateDirectory(model);
            foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano"))) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
            File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), new JsonObject { ["chat_template"] = template }.ToJsonString());
            string package = temp.File(name);
            PackageExporter.Export(model, package, new ExportOptions { Quant = WeightType.Int4, Layers = 1 }, overwrite: false);
            return package;
        }
        string chatml = Export("chatml", "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}");
        using (var model = Model.Open(chatml))
        {
            Assert.Equal("chatml", model.ChatTemplate.Name);
            Assert.Null(model.ChatTemplateNotice);
        }

        string unknown = Export("unknown", "{% for m in messages %}### {{ m.role }}: {{ m.content }}{% endfor %}");
        using (var model = Model.Open(unknown))
        {
            Assert.Equal("plain", model.ChatTemplate.Name);
            Assert.Contains("none of the supported families", model.ChatTemplateNotice);
            Assert.Contains("model_type 'llama4_text'", model.ChatTemplateNotice);
        }
        var e = Assert.Throws<TokenizerFormatException>(() => Model.Open(unknown, new ModelOptions { RequireRecognizedChatTemplate = true }));
        Assert.Contains("none of the supported families", e.Message);
    }
}
