using Behemoth.Text;
using static Behemoth.Text.ChatTurn;
using static Behemoth.Runtime.Tests.RealTokenizers;

namespace Behemoth.Runtime.Tests;

/// <summary>Rendered prompts encoded with the family's real tokenizer: every marker is one special-token id.</summary>
public class ChatTokenizationTests
{
    private static readonly ChatTurn[] Conversation = [ChatTurn.System("Be brief."), User("Ciao!"), Assistant("Ciao."), User("Wie geht's?")];

    private static List<int> Encode(string file, ChatTemplate template) =>
        Get(file).Tokenizer.EncodeToIds(template.Render(Conversation)).ToList();

    [Fact]
    public void Llama4_prompt_has_one_bos_and_single_header_and_eot_ids()
    {
        var ids = Encode(Llama4, HeaderChatTemplate.Llama4);
        Assert.Equal(200000, ids[0]);
        Assert.Single(ids, 200000);
        Assert.Equal(5, ids.Count(i => i == 200005));   // <|header_start|>: four messages and the generation prompt
        Assert.Equal(5, ids.Count(i => i == 200006));   // <|header_end|>
        Assert.Equal(4, ids.Count(i => i == 200008));   // <|eot|>
        Assert.Equal(HeaderChatTemplate.Llama4.Render(Conversation), Get(Llama4).Tokenizer.Decode(ids));
    }

    [Fact]
    public void Llama3_prompt_has_single_header_and_eot_id_tokens()
    {
        var ids = Encode(Llama3, HeaderChatTemplate.Llama3);
        Assert.Equal(128000, ids[0]);
        Assert.Equal(5, ids.Count(i => i == 128006));
        Assert.Equal(4, ids.Count(i => i == 128009));
    }

    [Fact]
    public void Qwen_chatml_prompt_has_single_im_start_and_im_end_ids()
    {
        var ids = Encode(Qwen, ChatMLTemplate.Qwen2);
        Assert.Equal(151644, ids[0]);
        Assert.Equal(5, ids.Count(i => i == 151644));
        Assert.Equal(4, ids.Count(i => i == 151645));
    }

    [Fact]
    public void Mistral_v3_prompt_has_inst_control_tokens_and_v1_has_bos_and_eos_ids()
    {
        var v3 = Encode(MistralV3, MistralChatTemplate.V3);
        Assert.Equal(1, v3[0]);
        Assert.Equal(2, v3.Count(i => i == 3));         // [INST]
        Assert.Equal(2, v3.Count(i => i == 4));         // [/INST]
        Assert.Single(v3, 2);                            // </s> after the assistant reply

        var v1 = Encode(MistralV1, MistralChatTemplate.V1);
        Assert.Equal(1, v1[0]);
        Assert.Single(v1, 1);
        Assert.Single(v1, 2);
    }

    [Fact]
    public void Olmoe_prompt_has_single_endoftext_ids()
    {
        var ids = Encode(Olmoe, TuluChatTemplate.Instance);
        Assert.Equal(50279, ids[0]);
        Assert.Equal(2, ids.Count(i => i == 50279));
    }

    [Theory]
    [InlineData(Llama4, "llama4", new[] { 200008, 200007, 200001 })]
    [InlineData(Llama3, "llama3", new[] { 128009, 128008, 128001 })]
    [InlineData(Qwen, "chatml", new[] { 151645, 151643 })]
    [InlineData(MistralV1, "mistral-v1", new[] { 2 })]
    [InlineData(Olmoe, "olmoe", new[] { 50279 })]
    public void Stop_token_ids_are_the_templates_end_of_turn_tokens_and_eos(string file, string template, int[] expected)
    {
        Assert.Equal(expected, Get(file).StopTokenIds(ChatTemplate.FromName(template)));
    }
}
