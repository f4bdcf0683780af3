using System.Text;

namespace Behemoth.Text;

/// <summary>
/// The Tülu format of OLMoE-1B-7B-0924-Instruct (and the OLMo Instruct models):
/// <code>
/// &lt;|endoftext|&gt;&lt;|system|&gt;\nS\n&lt;|user|&gt;\nQ\n&lt;|assistant|&gt;\nA&lt;|endoftext|&gt;\n&lt;|user|&gt;\nQ2\n&lt;|assistant|&gt;\n
/// </code>
/// </summary>
/// <remarks>
/// The sequence opens with <c>&lt;|endoftext|&gt;</c>, the BOS these models use. Each assistant turn ends with
/// <c>&lt;|endoftext|&gt;</c> and a newline, except when it is the last message. As in the original template the
/// generation prompt is written after the last message whatever its role, and not at all for an empty
/// conversation. <c>&lt;|user|&gt;</c> and friends are ordinary text in this vocabulary, not special tokens. The
/// template checks no roles.
/// </remarks>
public sealed class TuluChatTemplate : ChatTemplate
{
    /// <summary>The one instance (<c>olmoe</c>), the template of the <c>olmoe</c> model type.</summary>
    public static TuluChatTemplate Instance { get; } = new();

    private const string EndOfText = "<|endoftext|>";

    private TuluChatTemplate() { }

    /// <inheritdoc/>
    public override string Name => "olmoe";

    /// <inheritdoc/>
    public override IReadOnlyList<string> StopTokens { get; } = [EndOfText];

    /// <summary>The model sometimes starts a new user turn instead of ending with EOS; that ends the reply too.</summary>
    public override IReadOnlyList<string> StopStrings { get; } = ["\n<|user|>"];

    /// <inheritdoc/>
    protected override string RenderCore(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt, bool includeBos)
    {
        var text = new StringBuilder();
        if (includeBos) text.Append(EndOfText);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            bool last = i == messages.Count - 1;
            text.Append("<|").Append(m.RoleName).Append("|>\n").Append(m.Content);
            if (m.Role == TurnRole.Assistant) text.Append(EndOfText).Append(last ? "" : "\n");
            else text.Append('\n');
        }
        if (addGenerationPrompt && messages.Count > 0) text.Append("<|assistant|>\n");
        return text.ToString();
    }
}
