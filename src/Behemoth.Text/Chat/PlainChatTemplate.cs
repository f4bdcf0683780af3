using System.Text;

namespace Behemoth.Text;

/// <summary>
/// For models without a chat format (behemoth-nano, base checkpoints): one <c>Role: content</c> line per message and
/// <c>Assistant:</c> as the generation prompt, e.g. <c>System: Be brief.\nUser: Hi\nAssistant:</c>.
/// </summary>
/// <remarks>
/// A model trained on plain text has never seen this; it is a readable convention that gives it something to
/// continue, and generation stops when the model starts the next "User:" line. No BOS is written: plain-text
/// tokenizers add it as an id, not as text.
/// </remarks>
public sealed class PlainChatTemplate : ChatTemplate
{
    /// <summary>The one instance (<c>plain</c>), also the fallback for model types without a known chat format.</summary>
    public static PlainChatTemplate Instance { get; } = new();

    private PlainChatTemplate() { }

    /// <inheritdoc/>
    public override string Name => "plain";

    /// <inheritdoc/>
    public override IReadOnlyList<string> StopTokens => [];

    /// <summary>A new line that starts a user turn ("\nUser:"): the model, with no end-of-turn token, goes on to write the user's part.</summary>
    public override IReadOnlyList<string> StopStrings { get; } = ["\nUser:"];

    /// <inheritdoc/>
    protected override string RenderCore(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt, bool includeBos)
    {
        var text = new StringBuilder();
        foreach (var m in messages)
            text.Append(Label(m.Role)).Append(": ").Append(m.Content).Append('\n');
        if (addGenerationPrompt) text.Append("Assistant:");
        return text.ToString();
    }

    private static string Label(TurnRole role) => role switch
    {
        TurnRole.System => "System",
        TurnRole.User => "User",
        _ => "Assistant",
    };
}
