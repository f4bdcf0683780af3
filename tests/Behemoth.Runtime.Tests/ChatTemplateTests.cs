using Behemoth.Text;
using static Behemoth.Text.ChatTurn;

namespace Behemoth.Runtime.Tests;

/// <summary>
/// Rendered prompts against strings derived by hand: Mistral from tests/fixtures/tokenizers/chat_templates/*.jinja, the others
/// from the formats their model cards and chat templates document.
/// </summary>
public class ChatTemplateTests
{
    private static readonly ChatTurn[] Conversation =
    [
        ChatTurn.System("Be brief."),
        User("Hi!"),
        Assistant("Hello."),
        User("Capital of Italy?"),
    ];

    [Fact]
    public void Mistral_v1_puts_the_system_text_in_the_first_user_message_with_spaces_inside_inst()
    {
        Assert.Equal("<s>[INST] Be brief.\n\nHi! [/INST]Hello.</s>[INST] Capital of Italy? [/INST]", MistralChatTemplate.V1.Render(Conversation));
    }

    [Fact]
    public void Mistral_v3_puts_the_system_text_in_the_last_user_message_without_spaces()
    {
        Assert.Equal("<s>[INST]Hi![/INST]Hello.</s>[INST]Be brief.\n\nCapital of Italy?[/INST]", MistralChatTemplate.V3.Render(Conversation));
    }

    [Fact]
    public void Mistral_v7_writes_system_prompts_in_place()
    {
        Assert.Equal("<s>[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi![/INST]Hello.</s>[INST]Capital of Italy?[/INST]", MistralChatTemplate.V7.Render(Conversation));
    }

    [Fact]
    public void Mistral_merges_consecutive_messages_of_one_role_and_joins_system_messages()
    {
        ChatTurn[] messages = [ChatTurn.System("A."), User("one"), ChatTurn.System("B."), User("two")];
        Assert.Equal("<s>[INST] A.\n\nB.\n\none\n\ntwo [/INST]", MistralChatTemplate.V1.Render(messages));
    }

    [Theory]
    [InlineData("mistral-v1")]
    [InlineData("mistral-v3")]
    [InlineData("mistral-v7")]
    public void Mistral_rejects_a_conversation_that_starts_with_the_assistant(string name)
    {
        var e = Assert.Throws<ArgumentException>(() => ChatTemplate.FromName(name).Render([Assistant("Hi"), User("Hello")]));
        Assert.Contains("must start with a user", e.Message);
        Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Mistral_rejects_an_empty_assistant_message()
    {
        var e = Assert.Throws<ArgumentException>(() => MistralChatTemplate.V1.Render([User("Hi"), Assistant(""), User("Again")]));
        Assert.Contains("non-empty", e.Message);
    }

    [Fact]
    public void Mistral_v7_rejects_a_system_message_after_an_assistant_message_but_accepts_one_first()
    {
        Assert.Throws<ArgumentException>(() => MistralChatTemplate.V7.Render([User("Hi"), Assistant("Hello"), ChatTurn.System("Late.")]));
        Assert.Equal("<s>[SYSTEM_PROMPT]S[/SYSTEM_PROMPT]", MistralChatTemplate.V7.Render([ChatTurn.System("S")]));
        Assert.Throws<ArgumentException>(() => MistralChatTemplate.V1.Render([Assistant("Hello")]));
    }

    [Fact]
    public void Llama4_writes_header_blocks_ending_in_eot_and_an_open_assistant_header()
    {
        Assert.Equal(
            "<|begin_of_text|><|header_start|>system<|header_end|>\n\nBe brief.<|eot|>" +
            "<|header_start|>user<|header_end|>\n\nHi!<|eot|>" +
            "<|header_start|>assistant<|header_end|>\n\nHello.<|eot|>" +
            "<|header_start|>user<|header_end|>\n\nCapital of Italy?<|eot|>" +
            "<|header_start|>assistant<|header_end|>\n\n",
            HeaderChatTemplate.Llama4.Render(Conversation));
    }

    [Fact]
    public void Llama3_writes_start_header_id_blocks_with_trimmed_content()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            HeaderChatTemplate.Llama3.Render([User("  Hi!\n")]));
    }

    [Fact]
    public void Without_a_generation_prompt_or_bos_the_render_is_only_the_messages()
    {
        Assert.Equal("<|header_start|>user<|header_end|>\n\nHi!<|eot|>", HeaderChatTemplate.Llama4.Render([User("Hi!")], addGenerationPrompt: false, includeBos: false));
    }

    [Fact]
    public void Qwen2_chatml_adds_the_default_system_message_when_none_is_given()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
            ChatMLTemplate.Qwen2.Render([User("Hi!")]));
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n" +
            "<|im_start|>user\nCapital of Italy?<|im_end|>\n<|im_start|>assistant\n",
            ChatMLTemplate.Qwen2.Render(Conversation));
    }

    [Fact]
    public void Qwen3_chatml_has_no_default_system_message()
    {
        Assert.Equal("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n", ChatMLTemplate.Qwen3.Render([User("Hi!")]));
    }

    [Fact]
    public void Olmoe_uses_the_tulu_format_with_endoftext_after_assistant_turns()
    {
        Assert.Equal(
            "<|endoftext|><|system|>\nBe brief.\n<|user|>\nHi!\n<|assistant|>\nHello.<|endoftext|>\n<|user|>\nCapital of Italy?\n<|assistant|>\n",
            TuluChatTemplate.Instance.Render(Conversation));
        Assert.Equal("<|endoftext|><|user|>\nHi!\n<|assistant|>\nHello.<|endoftext|>",
            TuluChatTemplate.Instance.Render([User("Hi!"), Assistant("Hello.")], addGenerationPrompt: false));
    }

    [Fact]
    public void Plain_template_writes_role_lines_and_an_assistant_cue()
    {
        Assert.Equal("System: Be brief.\nUser: Hi!\nAssistant: Hello.\nUser: Capital of Italy?\nAssistant:", PlainChatTemplate.Instance.Render(Conversation));
        Assert.Equal(["\nUser:"], PlainChatTemplate.Instance.StopStrings);
    }

    [Theory]
    [InlineData("mixtral", "mistral-v1")]
    [InlineData("qwen2_moe", "chatml")]
    [InlineData("qwen3_moe", "chatml-qwen3")]
    [InlineData("olmoe", "olmoe")]
    [InlineData("llama4", "llama4")]
    [InlineData("llama4_text", "llama4")]
    [InlineData("deepseek_v2", "plain")]
    public void Model_type_selects_the_family_template(string modelType, string expected)
    {
        Assert.Equal(expected, ChatTemplate.ForModelType(modelType).Name);
    }

    [Fact]
    public void A_llama4_model_whose_tokenizer_lacks_header_tokens_gets_the_plain_template()
    {
        var sentencePiece = RealTokenizers.Get(RealTokenizers.Llama2);
        Assert.Equal("plain", ChatTemplate.ForModelType("llama4_text", sentencePiece.SpecialTokens).Name);
        Assert.Equal("llama3", ChatTemplate.ForModelType("llama4_text", RealTokenizers.Get(RealTokenizers.Llama3).SpecialTokens).Name);
    }

    [Fact]
    public void An_explicit_override_wins_and_unknown_names_list_the_supported_ones()
    {
        using var dir = new Behemoth.Tests.TempDirectory();
        File.WriteAllText(dir.File("config.json"), """{"model_type": "mixtral"}""");
        Assert.Equal("mistral-v1", ChatTemplate.ForDirectory(dir.Path).Name);
        Assert.Equal("mistral-v7", ChatTemplate.ForDirectory(dir.Path, overrideName: "mistral-v7").Name);
        var e = Assert.Throws<ArgumentException>(() => ChatTemplate.FromName("jinja"));
        Assert.Contains("chatml, chatml-qwen3, llama3, llama4, mistral-v1, mistral-v3, mistral-v7, olmoe, plain", e.Message);
    }

    [Fact]
    public void Null_content_is_refused_with_the_message_index()
    {
        var e = Assert.Throws<ArgumentException>(() => ChatMLTemplate.Qwen3.Render([User("a"), new ChatTurn(TurnRole.Assistant, null!)]));
        Assert.Contains("message 1", e.Message);
    }
}
