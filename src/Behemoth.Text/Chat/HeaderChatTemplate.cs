using System.Text;

namespace Behemoth.Text;

/// <summary>
/// Llama 3 and Llama 4 instruct format: every message is a header with the role, a blank line, the content and an
/// end-of-turn token; the generation prompt is an open assistant header.
/// <code>
/// Llama 4: &lt;|begin_of_text|&gt;&lt;|header_start|&gt;user&lt;|header_end|&gt;\n\nHi&lt;|eot|&gt;&lt;|header_start|&gt;assistant&lt;|header_end|&gt;\n\n
/// Llama 3: &lt;|begin_of_text|&gt;&lt;|start_header_id|&gt;user&lt;|end_header_id|&gt;\n\nHi&lt;|eot_id|&gt;&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n
/// </code>
/// </summary>
/// <remarks>
/// Llama 3's template trims each message's content, Llama 4's writes it as given. Neither checks the order of
/// roles, so neither does this. Llama 3.1+'s tool and "Cutting Knowledge Date" system preamble are not written: this is
/// the Llama 3.0 form, which 3.1 models also follow when no tools are given, minus that preamble.
/// </remarks>
public sealed class HeaderChatTemplate : ChatTemplate
{
    /// <summary>Llama 3 (<c>llama3</c>): <c>&lt;|start_header_id|&gt;</c> headers, <c>&lt;|eot_id|&gt;</c> ends a turn, contents trimmed.</summary>
    public static HeaderChatTemplate Llama3 { get; } = new("llama3", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", trim: true,
        ["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"]);

    /// <summary>Llama 4 (<c>llama4</c>): <c>&lt;|header_start|&gt;</c> headers, <c>&lt;|eot|&gt;</c> ends a turn, contents as given.</summary>
    public static HeaderChatTemplate Llama4 { get; } = new("llama4", "<|begin_of_text|>", "<|header_start|>", "<|header_end|>", "<|eot|>", trim: false,
        ["<|eot|>", "<|eom|>", "<|end_of_text|>"]);

    private readonly string _bos, _headerStart, _headerEnd, _endOfTurn;
    private readonly bool _trim;

    private HeaderChatTemplate(string name, string bos, string headerStart, string headerEnd, string endOfTurn, bool trim, IReadOnlyList<string> stops)
    {
        Name = name;
        (_bos, _headerStart, _headerEnd, _endOfTurn, _trim) = (bos, headerStart, headerEnd, endOfTurn, trim);
        StopTokens = stops;
    }

    /// <inheritdoc/>
    public override string Name { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<string> StopTokens { get; }

    /// <inheritdoc/>
    protected override string RenderCore(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt, bool includeBos)
    {
        var text = new StringBuilder();
        if (includeBos) text.Append(_bos);
        foreach (var m in messages)
            Header(text, m.RoleName).Append(_trim ? m.Content.Trim() : m.Content).Append(_endOfTurn);
        if (addGenerationPrompt) Header(text, "assistant");
        return text.ToString();
    }

    private StringBuilder Header(StringBuilder text, string role) => text.Append(_headerStart).Append(role).Append(_headerEnd).Append("\n\n");
}
