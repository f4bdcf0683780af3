using System.Text.Json;

namespace Behemoth.Text;

/// <summary>
/// Turns a conversation into the prompt text a model family was fine-tuned on, without a Jinja engine: each supported
/// template is written out in C# after the model's own chat_template, and tests compare it with strings derived by
/// hand from those templates.
/// </summary>
/// <remarks>
/// The rendered text contains the family's special tokens as text ("&lt;|eot|&gt;", "[INST]"); a tokenizer from
/// <see cref="ModelTokenizer.Open(string)"/> encodes each of them to its single id. Pass <c>includeBos: false</c> when the
/// caller adds the BOS id itself (as <c>TextGenerator</c> does), so it is not there twice.
/// </remarks>
public abstract class ChatTemplate
{
    private static readonly Dictionary<string, Func<ChatTemplate>> ByName = new(StringComparer.Ordinal)
    {
        ["chatml"] = () => ChatMLTemplate.Qwen2,
        ["chatml-qwen3"] = () => ChatMLTemplate.Qwen3,
        ["llama3"] = () => HeaderChatTemplate.Llama3,
        ["llama4"] = () => HeaderChatTemplate.Llama4,
        ["mistral-v1"] = () => MistralChatTemplate.V1,
        ["mistral-v3"] = () => MistralChatTemplate.V3,
        ["mistral-v7"] = () => MistralChatTemplate.V7,
        ["olmoe"] = () => TuluChatTemplate.Instance,
        ["plain"] = () => PlainChatTemplate.Instance,
    };

    /// <summary>The names <see cref="FromName"/> accepts, sorted.</summary>
    public static IReadOnlyList<string> Names { get; } = ByName.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>This template's name, one of <see cref="Names"/>.</summary>
    public abstract string Name { get; }

    /// <summary>Special tokens that end an assistant turn (generation stops on any of them).</summary>
    public abstract IReadOnlyList<string> StopTokens { get; }

    /// <summary>Plain-text sequences that end an assistant turn, for templates without special tokens; usually empty.</summary>
    public virtual IReadOnlyList<string> StopStrings => [];

    /// <summary>
    /// The prompt for <paramref name="messages"/>. With <paramref name="addGenerationPrompt"/> it ends where the
    /// assistant's reply begins.
    /// </summary>
    /// <exception cref="ArgumentException">The roles are in an order the model's template rejects.</exception>
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt = true, bool includeBos = true)
    {
        ArgumentNullException.ThrowIfNull(messages);
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i] is null) throw new ArgumentException($"message {i} is null", nameof(messages));
            if (messages[i].Content is null) throw new ArgumentException($"message {i} ({messages[i].RoleName}) has no content", nameof(messages));
        }
        return RenderCore(messages, addGenerationPrompt, includeBos);
    }

    /// <summary>
    /// Renders <paramref name="messages"/> (already checked: none null, none without content) in the template's format;
    /// what <see cref="Render"/> returns. A subclass throws <see cref="RoleError"/> for a role order its model rejects.
    /// </summary>
    /// <param name="messages">The conversation, oldest first.</param>
    /// <param name="addGenerationPrompt">End with the opening of an assistant turn, where the reply begins.</param>
    /// <param name="includeBos">Start with the beginning-of-sequence token as text, for templates that write one.</param>
    protected abstract string RenderCore(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt, bool includeBos);

    /// <summary>The template called <paramref name="name"/> (an explicit override of the automatic choice).</summary>
    public static ChatTemplate FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return ByName.TryGetValue(name, out var make) ? make()
            : throw new ArgumentException($"unknown chat template '{name}' (supported: {string.Join(", ", Names)})", nameof(name));
    }

    /// <summary>
    /// The template for a model type as config.json or the package manifest gives it. A Llama 4 or Llama model whose
    /// tokenizer lacks the header tokens (behemoth-nano: Llama 4 architecture, SentencePiece vocabulary trained on
    /// plain text) gets <see cref="PlainChatTemplate"/>; so does any model type without a known chat format.
    /// </summary>
    public static ChatTemplate ForModelType(string modelType, IReadOnlyDictionary<string, int>? specialTokens = null)
    {
        ArgumentNullException.ThrowIfNull(modelType);
        bool Has(string token) => specialTokens is null || specialTokens.ContainsKey(token);
        return modelType switch
        {
            "mixtral" or "mistral" => MistralChatTemplate.V1,
            "qwen2_moe" or "qwen2" => ChatMLTemplate.Qwen2,
            "qwen3_moe" or "qwen3" => ChatMLTemplate.Qwen3,
            "olmoe" => TuluChatTemplate.Instance,
            "llama4" or "llama4_text" when Has("<|header_start|>") => HeaderChatTemplate.Llama4,
            "llama4" or "llama4_text" or "llama" when Has("<|start_header_id|>") => HeaderChatTemplate.Llama3,
            _ => PlainChatTemplate.Instance,
        };
    }

    /// <summary>
    /// The template for a model directory or package: <paramref name="overrideName"/> when given, else the family of
    /// the tokenizer's own chat_template, else by the model_type of manifest.json or config.json, checked against the
    /// tokenizer's special tokens.
    /// </summary>
    public static ChatTemplate ForDirectory(string directory, LoadedTokenizer? tokenizer = null, string? overrideName = null)
    {
        if (overrideName is not null) return FromName(overrideName);
        string modelType = ReadModelType(directory);
        return tokenizer is null ? ForModelType(modelType, null) : ForTokenizer(modelType, tokenizer, requireRecognized: false, out _);
    }

    /// <summary>
    /// The supported family a model's own Jinja chat template is, told by the markers it writes: Llama 4's
    /// <c>&lt;|header_start|&gt;</c>, Llama 3's <c>&lt;|start_header_id|&gt;</c>, ChatML's <c>&lt;|im_start|&gt;</c> (Qwen 3
    /// when it handles <c>&lt;think&gt;</c>), Mistral's <c>[INST]</c> (v7 with <c>[SYSTEM_PROMPT]</c>, v3 with
    /// <c>[AVAILABLE_TOOLS]</c>, else v1), OLMoE/Tulu's <c>&lt;|user|&gt;</c> / <c>&lt;|assistant|&gt;</c>. Null when it is none of them.
    /// </summary>
    public static ChatTemplate? Recognize(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        bool Has(string marker) => source.Contains(marker, StringComparison.Ordinal);
        if (Has("<|header_start|>")) return HeaderChatTemplate.Llama4;
        if (Has("<|start_header_id|>")) return HeaderChatTemplate.Llama3;
        if (Has("<|im_start|>")) return Has("<think>") || Has("enable_thinking") ? ChatMLTemplate.Qwen3 : ChatMLTemplate.Qwen2;
        if (Has("[INST]")) return Has("[SYSTEM_PROMPT]") ? MistralChatTemplate.V7 : Has("[AVAILABLE_TOOLS]") ? MistralChatTemplate.V3 : MistralChatTemplate.V1;
        if (Has("<|user|>") && Has("<|assistant|>")) return TuluChatTemplate.Instance;
        return null;
    }

    /// <summary>
    /// The template for a model whose tokenizer is <paramref name="tokenizer"/>: the family of its own chat_template
    /// when it has one that <see cref="Recognize"/> knows; otherwise the <see cref="ForModelType"/> choice, with
    /// <paramref name="notice"/> saying why (or, with <paramref name="requireRecognized"/>, a
    /// <see cref="TokenizerFormatException"/> for a template that is there but not recognised).
    /// </summary>
    public static ChatTemplate ForTokenizer(string modelType, LoadedTokenizer tokenizer, bool requireRecognized, out string? notice)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        notice = null;
        if (tokenizer.ChatTemplateSource is not { Length: > 0 } source) return ForModelType(modelType, tokenizer.SpecialTokens);
        if (Recognize(source) is { } known) return known;
        var fallback = ForModelType(modelType, tokenizer.SpecialTokens);
        string message = $"the model's chat_template is none of the supported families ({string.Join(", ", Names)})";
        if (requireRecognized) throw new TokenizerFormatException(tokenizer.File, message);
        notice = $"{message}; using '{fallback.Name}', chosen from model_type '{modelType}'";
        return fallback;
    }

    /// <summary>model_type from a package's manifest.json or a checkpoint's config.json.</summary>
    public static string ReadModelType(string directory)
    {
        foreach (var name in new[] { "manifest.json", "config.json" })
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path)) continue;
            using var doc = JsonDocument.Parse(Behemoth.Package.PackageFile.ReadInput(path));
            if (doc.RootElement.TryGetProperty("model_type", out var type) && type.GetString() is { Length: > 0 } value) return value;
            throw new InvalidDataException($"{path}: no \"model_type\" string, needed to choose the chat template");
        }
        throw new FileNotFoundException($"{directory}: neither manifest.json nor config.json, needed to choose the chat template");
    }

    /// <summary>Throws the error the Jinja templates raise, naming the template.</summary>
    protected ArgumentException RoleError(string message) => new($"{Name} chat template: {message}", "messages");
}
