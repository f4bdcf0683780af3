namespace Behemoth.Text;

/// <summary>Who wrote a turn of a conversation.</summary>
public enum TurnRole
{
/// <summary>Instructions that frame the conversation.</summary>
    System,
/// <summary>What the user says.</summary>
    User,
/// <summary>What the model said (earlier replies, or a reply to continue).</summary>
    Assistant,
}

/// <summary>One turn of a conversation, as chat templates render it (the IChatClient side uses Microsoft.Extensions.AI.ChatMessage).</summary>
public sealed record ChatTurn(TurnRole Role, string Content)
{
    /// <summary>A system turn with <paramref name="content"/>.</summary>
    public static ChatTurn System(string content) => new(TurnRole.System, content);

    /// <summary>A user turn with <paramref name="content"/>.</summary>
    public static ChatTurn User(string content) => new(TurnRole.User, content);

    /// <summary>An assistant turn with <paramref name="content"/>.</summary>
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
