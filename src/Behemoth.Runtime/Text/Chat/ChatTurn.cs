namespace Behemoth.Runtime.Text;

/// <summary>Who wrote a turn of a conversation.</summary>
public enum TurnRole
{
    System,
    User,
    Assistant,
}

/// <summary>One turn of a conversation, as chat templates render it (the IChatClient side uses Microsoft.Extensions.AI.ChatMessage).</summary>
public sealed record ChatTurn(TurnRole Role, string Content)
{
    public static ChatTurn System(string content) => new(TurnRole.System, content);

    public static ChatTurn User(string content) => new(TurnRole.User, content);

    public static ChatTurn Assistant(string content) => new(TurnRole.Assistant, content);

    /// <summary>The role as the templates write it: system, user, assistant.</summary>
    public string RoleName => Role switch
    {
        TurnRole.System => "system",
        TurnRole.User => "user",
        TurnRole.Assistant => "assistant",
        _ => throw new ArgumentOutOfRangeException(nameof(Role), Role, "unknown chat role"),
    };
}
