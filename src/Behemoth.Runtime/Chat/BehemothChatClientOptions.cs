using Behemoth.Runtime.Generation;

namespace Behemoth.Runtime.Chat;

/// <summary>How a <see cref="BehemothChatClient"/> builds prompts and what it generates with when a request says nothing.</summary>
public sealed class BehemothChatClientOptions
{
    /// <summary>
    /// The generation options a request starts from; <see cref="Microsoft.Extensions.AI.ChatOptions"/> values override
    /// them one by one. Default: greedy, 128 new tokens, prompts that do not fit are refused.
    /// </summary>
    public GenerationOptions Generation { get; set; } = new();

    /// <summary>Turns the conversation into prompt text; default <see cref="ChatPromptFormatter.Plain"/>.</summary>
    public IChatPromptFormatter PromptFormatter { get; set; } = ChatPromptFormatter.Plain;

    /// <summary>The model id responses carry; null: "package/profile" (the package folder's name and the profile).</summary>
    public string? ModelId { get; set; }

    /// <summary>
    /// Conversations (by <see cref="Microsoft.Extensions.AI.ChatOptions.ConversationId"/>) whose KV cache is kept
    /// between turns (default 8; 0: none); the least recently used is freed first.
    /// </summary>
    public int MaxConversations { get; set; } = 8;

    /// <summary>Bytes of keys and values all kept conversations may hold together (default 256 MiB).</summary>
    public long MaxConversationCacheBytes { get; set; } = 256L << 20;
}
