using System.Text;
using Microsoft.Extensions.AI;

namespace Behemoth.Runtime.Chat;

/// <summary>
/// Turns a conversation into the prompt text a model continues, and names the strings that end the assistant's turn.
/// Model-specific chat templates plug in here (see <see cref="ChatPromptFormatter.FromRoleContent"/>).
/// </summary>
public interface IChatPromptFormatter
{
    /// <summary>The prompt for <paramref name="messages"/>, ending where the assistant's reply begins.</summary>
    string Format(IReadOnlyList<ChatMessage> messages);

    /// <summary>Strings that end the reply (added to the caller's stop sequences); the stop string is not returned.</summary>
    IReadOnlyList<string> StopStrings { get; }

    /// <summary>Token ids that end the reply (a template's end-of-turn tokens), besides the model's end-of-sequence ids.</summary>
    IReadOnlyList<int> StopTokens => [];
}

/// <summary>Prompt formatters: the plain default and adapters for delegates.</summary>
public static class ChatPromptFormatter
{
    /// <summary>
    /// The default for models without a chat template: one "Role: text" line per message (System, User, Assistant, …),
    /// then "Assistant:"; the reply ends at a new line that starts another user turn ("\nUser:").
    /// </summary>
    public static IChatPromptFormatter Plain { get; } = new PlainFormatter();

    /// <summary>A formatter from a delegate over the messages.</summary>
    public static IChatPromptFormatter FromDelegate(Func<IReadOnlyList<ChatMessage>, string> format, IReadOnlyList<string>? stopStrings = null)
    {
        ArgumentNullException.ThrowIfNull(format);
        return new DelegateFormatter(format, stopStrings ?? []);
    }

    /// <summary>
    /// A formatter from a delegate over (role, text) pairs, the shape chat templates render: roles are
    /// <see cref="ChatRole.Value"/> (system, user, assistant, tool) and text is <see cref="ChatMessage.Text"/>.
    /// For example <c>FromRoleContent(m =&gt; template.Render(m, addGenerationPrompt: true), template.StopStrings)</c>.
    /// </summary>
    public static IChatPromptFormatter FromRoleContent(Func<IReadOnlyList<(string Role, string Content)>, string> render, IReadOnlyList<string>? stopStrings = null)
    {
        ArgumentNullException.ThrowIfNull(render);
        return new DelegateFormatter(messages => render(messages.Select(m => (m.Role.Value, m.Text)).ToArray()), stopStrings ?? []);
    }

    /// <summary>
    /// The model's own chat template (see <see cref="Text.ChatTemplate.ForDirectory"/>): the conversation rendered
    /// without the beginning-of-sequence token (the generator adds it), ending at the assistant's turn; the template's
    /// end-of-turn tokens that <paramref name="tokenizer"/> has stop the reply. Roles other than system, user and
    /// assistant are refused.
    /// </summary>
    public static IChatPromptFormatter FromTemplate(Text.ChatTemplate template, Text.LoadedTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(tokenizer);
        return new TemplateFormatter(template, tokenizer.StopTokenIds(template));
    }

    private sealed class TemplateFormatter(Text.ChatTemplate template, IReadOnlyList<int> stopTokens) : IChatPromptFormatter
    {
        public IReadOnlyList<string> StopStrings => template.StopStrings;

        public IReadOnlyList<int> StopTokens => stopTokens;

        public string Format(IReadOnlyList<ChatMessage> messages) =>
            template.Render(messages.Select(m => new Text.ChatTurn(Role(m.Role), m.Text)).ToArray(), addGenerationPrompt: true, includeBos: false);

        private static Text.TurnRole Role(ChatRole role) =>
            role == ChatRole.System ? Text.TurnRole.System
            : role == ChatRole.User ? Text.TurnRole.User
            : role == ChatRole.Assistant ? Text.TurnRole.Assistant
            : throw new ArgumentException($"the chat template has no '{role.Value}' role (system, user and assistant only)");
    }

    private sealed class PlainFormatter : IChatPromptFormatter
    {
        public IReadOnlyList<string> StopStrings { get; } = ["\nUser:"];

        public string Format(IReadOnlyList<ChatMessage> messages)
        {
            var sb = new StringBuilder();
            foreach (var m in messages)
                sb.Append(Title(m.Role.Value)).Append(": ").Append(m.Text).Append('\n');
            return sb.Append("Assistant:").ToString();
        }

        private static string Title(string role) => role.Length == 0 ? role : string.Concat(char.ToUpperInvariant(role[0]).ToString(), role.AsSpan(1));
    }

    private sealed class DelegateFormatter(Func<IReadOnlyList<ChatMessage>, string> format, IReadOnlyList<string> stopStrings) : IChatPromptFormatter
    {
        public IReadOnlyList<string> StopStrings { get; } = stopStrings;

        public string Format(IReadOnlyList<ChatMessage> messages) => format(messages);
    }
}
