namespace Behemoth.Runtime.Text;

/// <summary>Who wrote a chat message.</summary>
public enum ChatRole
{
    System,
    User,
    Assistant,
}

/// <summary>One message of a conversation.</summary>
public sealed record ChatMessage(ChatRole Role, string Content)
{
    public static ChatMessage System(string content) => new(ChatRole.System, content);

    public static ChatMessage User(string content) => new(ChatRole.User, content);

    public static ChatMessage Assistant(string content) => new(ChatRole.Assistant, content);

    /// <summary>The role as the templates write it: system, user, assistant.</summary>
    public string RoleName => Role switch
    {
        ChatRole.System => "system",
        ChatRole.User => "user",
        ChatRole.Assistant => "assistant",
        _ => throw new ArgumentOutOfRangeException(nameof(Role), Role, "unknown chat role"),
    };
}
