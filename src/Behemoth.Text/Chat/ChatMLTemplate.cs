using System.Text;

namespace Behemoth.Text;

/// <summary>
/// ChatML, the Qwen format: <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message and
/// <c>&lt;|im_start|&gt;assistant\n</c> as the generation prompt. There is no BOS.
/// </summary>
/// <remarks>
/// Qwen 1.5/2 (qwen2_moe) templates insert "You are a helpful assistant." as the system message when the
/// conversation does not start with one; Qwen 3 (qwen3_moe) does not. Qwen 3's thinking controls are not modelled:
/// the prompt is the one for enable_thinking=true (the default), and reasoning in earlier assistant turns is kept
/// as given rather than stripped. Roles are not checked, as the Qwen templates do not check them.
/// </remarks>
public sealed class ChatMLTemplate : ChatTemplate
{
    /// <summary>Qwen 1.5 / 2 (<c>chatml</c>): adds "You are a helpful assistant." when the conversation has no system message.</summary>
    public static ChatMLTemplate Qwen2 { get; } = new("chatml", "You are a helpful assistant.");

    /// <summary>Qwen 3 (<c>chatml-qwen3</c>): no default system message.</summary>
    public static ChatMLTemplate Qwen3 { get; } = new("chatml-qwen3", null);

    private readonly string? _defaultSystem;

    private ChatMLTemplate(string name, string? defaultSystem) => (Name, _defaultSystem) = (name, defaultSystem);

    /// <inheritdoc/>
    public override string Name { get; }

    /// <summary>The system message used when the conversation has none; null for none.</summary>
    public string? DefaultSystemMessage => _defaultSystem;

    /// <inheritdoc/>
    public override IReadOnlyList<string> StopTokens { get; } = ["<|im_end|>", "<|endoftext|>"];

    /// <inheritdoc/>
    protected override string RenderCore(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt, bool includeBos)
    {
        var text = new StringBuilder();
        if (_defaultSystem is not null && (messages.Count == 0 || messages[0].Role != TurnRole.System))
            Turn(text, "system", _defaultSystem);
        foreach (var m in messages) Turn(text, m.RoleName, m.Content);
        if (addGenerationPrompt) text.Append("<|im_start|>assistant\n");
        return text.ToString();
    }

    private static void Turn(StringBuilder text, string role, string content) =>
        text.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append("<|im_end|>\n");
}
