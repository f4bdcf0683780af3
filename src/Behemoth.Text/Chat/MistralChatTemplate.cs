using System.Text;

namespace Behemoth.Text;

/// <summary>
/// Mistral's <c>[INST]</c> formats, after the templates in shared/tokenizers/chat_templates (text-only: tool calls and
/// image chunks are not supported). All three start with <c>&lt;s&gt;</c>, end each assistant reply with
/// <c>&lt;/s&gt;</c> and have no generation prompt (the model answers right after <c>[/INST]</c>).
/// <list type="bullet">
/// <item>v1 (Mistral 7B v0.1, Mixtral 8x7B): <c>[INST] Q [/INST]A&lt;/s&gt;</c>; all system messages, joined by a
/// blank line, open the first user message.</item>
/// <item>v3 (v0.3, Mixtral 8x22B; [INST] is a control token): <c>[INST]Q[/INST]A&lt;/s&gt;</c>, no spaces; the
/// system text opens the last user message instead.</item>
/// <item>v7: like v3, but system messages stay where they are, as <c>[SYSTEM_PROMPT]S[/SYSTEM_PROMPT]</c>.</item>
/// </list>
/// </summary>
/// <remarks>
/// As in the templates, consecutive messages of the same role are merged with a blank line (system messages in v7
/// are not), the conversation must start with a user message (v7: or a system one), a system message may not follow
/// an assistant one (v7), and an assistant message may not be empty.
/// </remarks>
public sealed class MistralChatTemplate : ChatTemplate
{
    /// <summary>v1 (<c>mistral-v1</c>): Mistral 7B v0.1 and Mixtral 8x7B, the default for <c>mixtral</c> and <c>mistral</c> model types.</summary>
    public static MistralChatTemplate V1 { get; } = new("mistral-v1", 1);

    /// <summary>v3 (<c>mistral-v3</c>): Mistral 7B v0.3 and Mixtral 8x22B.</summary>
    public static MistralChatTemplate V3 { get; } = new("mistral-v3", 3);

    /// <summary>v7 (<c>mistral-v7</c>): system messages kept in place as <c>[SYSTEM_PROMPT]</c> blocks.</summary>
    public static MistralChatTemplate V7 { get; } = new("mistral-v7", 7);

    private const string Bos = "<s>", Eos = "</s>";
    private readonly int _version;

    private MistralChatTemplate(string name, int version) => (Name, _version) = (name, version);

    /// <inheritdoc/>
    public override string Name { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<string> StopTokens { get; } = [Eos];

    /// <inheritdoc/>
    protected override string RenderCore(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt, bool includeBos)
    {
        // v1/v3 pull every system message out and place the joined text inside a user message.
        string system = _version == 7 ? "" : string.Join("\n\n", messages.Where(m => m.Role == TurnRole.System).Select(m => m.Content));
        var turns = Merge(_version == 7 ? messages : messages.Where(m => m.Role != TurnRole.System).ToList());
        Validate(turns);

        int systemTurn = system.Length == 0 ? -1
            : _version == 1 ? 0
            : turns.FindLastIndex(t => t.Role == TurnRole.User);
        var text = new StringBuilder();
        if (includeBos) text.Append(Bos);
        for (int i = 0; i < turns.Count; i++)
        {
            var (role, content) = (turns[i].Role, turns[i].Content);
            string prefix = i == systemTurn ? system + "\n\n" : "";
            switch (role)
            {
                case TurnRole.User when _version == 1:
                    text.Append("[INST] ").Append(prefix).Append(content).Append(" [/INST]");
                    break;
                case TurnRole.User:
                    text.Append("[INST]").Append(prefix).Append(content).Append("[/INST]");
                    break;
                case TurnRole.Assistant:
                    if (content.Length == 0) throw RoleError($"assistant message {i} must have non-empty content");
                    text.Append(content).Append(Eos);
                    break;
                default:
                    text.Append("[SYSTEM_PROMPT]").Append(content).Append("[/SYSTEM_PROMPT]");
                    break;
            }
        }
        return text.ToString();
    }

    /// <summary>Consecutive messages of one role become one, joined by a blank line; system messages are never merged.</summary>
    private static List<ChatTurn> Merge(IReadOnlyList<ChatTurn> messages)
    {
        var merged = new List<ChatTurn>();
        foreach (var m in messages)
        {
            if (merged.Count > 0 && merged[^1].Role == m.Role && m.Role != TurnRole.System)
                merged[^1] = merged[^1] with { Content = merged[^1].Content + "\n\n" + m.Content };
            else merged.Add(m);
        }
        return merged;
    }

    private void Validate(List<ChatTurn> turns)
    {
        if (turns.Count == 0) return;
        if (turns[0].Role == TurnRole.Assistant || (turns[0].Role == TurnRole.System && _version != 7))
            throw RoleError($"the conversation must start with a user{(_version == 7 ? " or system" : "")} message, got {turns[0].RoleName}");
        for (int i = 1; i < turns.Count; i++)
            if (turns[i - 1].Role == TurnRole.Assistant && turns[i].Role == TurnRole.System)
                throw RoleError($"unexpected role 'system' after role 'assistant' (message {i})");
    }
}
