using Behemoth.Runtime.Chat;
using Behemoth.Text;
using Microsoft.Extensions.AI;
using static Behemoth.Runtime.Tests.RealTokenizers;

namespace Behemoth.Runtime.Tests;

/// <summary>The IChatClient's prompt from a model's chat template: no BOS (the generator adds it), the template's end-of-turn ids stop the reply.</summary>
public class ChatPromptFormatterTests
{
    [Fact]
    public void Llama4_template_formats_without_bos_and_stops_at_eot()
    {
        var formatter = ChatPromptFormatter.FromTemplate(HeaderChatTemplate.Llama4, Get(Llama4));
        string prompt = formatter.Format([new ChatMessage(ChatRole.System, "Be brief."), new ChatMessage(ChatRole.User, "Ciao!")]);
        Assert.Equal("<|header_start|>system<|header_end|>\n\nBe brief.<|eot|><|header_start|>user<|header_end|>\n\nCiao!<|eot|>"
            + "<|header_start|>assistant<|header_end|>\n\n", prompt);
        Assert.Contains(200008, formatter.StopTokens);            // <|eot|>
    }

    [Fact]
    public void ChatML_template_stops_at_im_end()
    {
        var formatter = ChatPromptFormatter.FromTemplate(ChatMLTemplate.Qwen2, Get(Qwen));
        string prompt = formatter.Format([new ChatMessage(ChatRole.User, "Hi")]);
        Assert.EndsWith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt);
        Assert.Contains(151645, formatter.StopTokens);            // <|im_end|>
    }

    [Fact]
    public void Roles_the_template_lacks_are_refused()
    {
        var formatter = ChatPromptFormatter.FromTemplate(ChatMLTemplate.Qwen2, Get(Qwen));
        var e = Assert.Throws<ArgumentException>(() => formatter.Format([new ChatMessage(ChatRole.Tool, "42")]));
        Assert.Contains("'tool'", e.Message);
    }
}
