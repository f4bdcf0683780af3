using System.Runtime.CompilerServices;
using System.Text;
using Behemoth.Runtime.Diagnostics;
using Behemoth.Runtime.Generation;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.Tokenizers;

namespace Behemoth.Runtime.Chat;

// Microsoft.ML.Tokenizers' tokenizer, not Behemoth.Runtime.Tokenizer (the wrapper generation uses)
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

/// <summary>
/// A Microsoft.Extensions.AI <see cref="IChatClient"/> over one loaded device profile: the conversation is rendered
/// to a prompt by an <see cref="IChatPromptFormatter"/>, then generated with <see cref="TextGenerator"/>.
/// </summary>
/// <remarks>
/// <para>
/// One generation at a time: concurrent requests on one client wait their turn (a <see cref="SemaphoreSlim"/> held
/// from the start of a request until its response is complete, or its stream is disposed). Dispose streams that are
/// abandoned early (<c>await foreach</c> does) so the next request can run.
/// </para>
/// <para>
/// <see cref="ChatOptions"/> maps onto <see cref="GenerationOptions"/>: MaxOutputTokens, Temperature, TopK, TopP,
/// Seed, StopSequences (added to the formatter's stop strings) and AdditionalProperties["repetition_penalty"];
/// Instructions become a leading system message. What the client cannot honour yet (Tools and ToolMode, a JSON
/// ResponseFormat, FrequencyPenalty and PresencePenalty, another ModelId, background responses, tool-role messages
/// and non-text contents) is refused with a <see cref="NotSupportedException"/> naming it, never silently dropped.
/// </para>
/// <para>
/// Conversations: with <see cref="ChatOptions.ConversationId"/>, the KV cache of the conversation is kept after the
/// response (up to <see cref="BehemothChatClientOptions.MaxConversations"/> conversations and
/// <see cref="BehemothChatClientOptions.MaxConversationCacheBytes"/>, least recently used freed first). The caller still
/// sends the whole conversation each turn (the client keeps no messages); the prompt's tokens are compared with the
/// cached ones and only what differs runs, a diverging turn rewinding to the common prefix. The response's
/// <see cref="UsageDetails.CachedInputTokenCount"/> says how many prompt tokens came from the cache.
/// </para>
/// <para>The client neither owns nor disposes the session and tokenizer it is given. Disposing the client, or the
/// session under it (as a container does), ends the responses in progress with an <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed class BehemothChatClient : IChatClient
{
    /// <summary>The provider name in <see cref="ChatClientMetadata"/>.</summary>
    public const string ProviderName = "behemoth";

    /// <summary>The <see cref="ChatOptions.AdditionalProperties"/> key for <see cref="GenerationOptions.RepetitionPenalty"/>.</summary>
    public const string RepetitionPenaltyKey = "repetition_penalty";

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly GenerationOptions _defaults;
    private readonly IChatPromptFormatter _formatter;
    private readonly ILogger _logger;
    private readonly RuntimeMetrics _metrics;
    private readonly IDisposable _expertsTracking;
    private readonly string _providerName;
    private readonly CancellationTokenSource _disposal = new();     // cancels the responses in progress on Dispose
    private readonly ConversationCache _conversations;
    private volatile bool _disposed;

    /// <param name="session">The loaded profile; it stays the caller's to dispose, after this client.</param>
    /// <param name="tokenizer">The package's tokenizer (<see cref="Text.ModelTokenizer.Load"/>).</param>
    /// <param name="options">Prompt formatter, default generation options and model id; defaults when null.</param>
    /// <param name="logger">Logs one line per generation; none when null.</param>
    /// <param name="metrics">Where generations are measured; <see cref="RuntimeMetrics.Shared"/> when null.</param>
    public BehemothChatClient(DecoderSession session, Tokenizer tokenizer, BehemothChatClientOptions? options = null,
        ILogger? logger = null, RuntimeMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new BehemothChatClientOptions();
        _defaults = options.Generation ?? throw new ArgumentException("Generation must not be null", nameof(options));
        _defaults.Validate();
        _formatter = options.PromptFormatter ?? throw new ArgumentException("PromptFormatter must not be null", nameof(options));
        _logger = logger ?? NullLogger.Instance;
        _metrics = metrics ?? RuntimeMetrics.Shared;
        _providerName = RuntimeMetrics.ProviderName(session.Provider);
        Session = session;
        Tokenizer = tokenizer;
        string fullPath = Path.GetFullPath(session.Directory);
        ModelId = options.ModelId ?? $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(fullPath))}/{session.Profile}";
        Metadata = new ChatClientMetadata(ProviderName, new Uri(fullPath), ModelId);
        _expertsTracking = _metrics.TrackExperts(session);
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxConversations);
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxConversationCacheBytes);
        _conversations = new ConversationCache(options.MaxConversations, options.MaxConversationCacheBytes);
    }

    /// <summary>Conversations whose KV cache is kept now.</summary>
    public int CachedConversations => _conversations.Count;

    /// <summary>
    /// Saves the kept cache of conversation <paramref name="conversationId"/> to <paramref name="path"/> (see
    /// <see cref="Generator.SaveState(string)"/>), so that an app killed in the background can
    /// <see cref="RestoreConversationAsync"/> it and carry on without running the conversation again.
    /// </summary>
    /// <exception cref="InvalidOperationException">The client keeps no cache for that conversation.</exception>
    public async Task SaveConversationAsync(string conversationId, string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(conversationId);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);     // not while a turn runs on it
        try
        {
            var generator = _conversations.Take(conversationId)
                ?? throw new InvalidOperationException($"no cached conversation '{conversationId}' (it never ran, or was evicted)");
            try
            {
                generator.SaveState(path);
            }
            finally
            {
                _conversations.Put(conversationId, generator);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Restores a conversation saved by <see cref="SaveConversationAsync"/> under <paramref name="conversationId"/>.</summary>
    /// <exception cref="SessionStateException">The file was saved from another package or profile, or is damaged.</exception>
    public async Task RestoreConversationAsync(string conversationId, string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(conversationId);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var generator = Generator.RestoreState(Session, path, _defaults);
            _conversations.Put(conversationId, generator);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The loaded profile the client generates with (the caller's to dispose, after the client).</summary>
    public DecoderSession Session { get; }
    /// <summary>The tokenizer prompts are encoded and replies decoded with.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>"package/profile" unless the options named another.</summary>
    public string ModelId { get; }

    /// <summary>Provider "behemoth", the package folder as a file URI, and <see cref="ModelId"/>.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var stats = new GenerationStats();
        var turn = new Turn();
        var created = DateTimeOffset.UtcNow;
        var text = new StringBuilder();
        await foreach (var piece in RunAsync(messages, options, stats, turn, cancellationToken).ConfigureAwait(false)) text.Append(piece);
        string id = NewId();
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()) { MessageId = id, CreatedAt = created })
        {
            ResponseId = id,
            ModelId = ModelId,
            CreatedAt = created,
            FinishReason = FinishReason(stats),
            Usage = Usage(stats, turn),
        };
    }

    /// <inheritdoc />
    /// <remarks>
    /// Yields an update per piece of text as soon as it is complete (see <see cref="TextGenerator"/>), then a last update
    /// with no text, the <see cref="ChatResponseUpdate.FinishReason"/> and a <see cref="UsageContent"/>.
    /// </remarks>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var stats = new GenerationStats();
        var turn = new Turn();
        var created = DateTimeOffset.UtcNow;
        string id = NewId();
        await foreach (var piece in RunAsync(messages, options, stats, turn, cancellationToken).ConfigureAwait(false))
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, MessageId = id, ModelId = ModelId, CreatedAt = created };
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(stats, turn))])
        {
            ResponseId = id,
            MessageId = id,
            ModelId = ModelId,
            CreatedAt = created,
            FinishReason = FinishReason(stats),
        };
    }

    /// <summary>The generation options a request with <paramref name="options"/> runs with (validated).</summary>
    public GenerationOptions ToGenerationOptions(ChatOptions? options)
    {
        var g = _defaults;
        IEnumerable<string> stops = g.StopStrings.Concat(_formatter.StopStrings);
        if (options is not null)
        {
            g = g with
            {
                MaxNewTokens = options.MaxOutputTokens ?? g.MaxNewTokens,
                Temperature = options.Temperature ?? g.Temperature,
                TopK = options.TopK ?? g.TopK,
                TopP = options.TopP ?? g.TopP,
                Seed = options.Seed is long seed ? FoldSeed(seed) : g.Seed,
                RepetitionPenalty = options.AdditionalProperties?.TryGetValue(RepetitionPenaltyKey, out float penalty) == true ? penalty : g.RepetitionPenalty,
            };
            if (options.StopSequences is { } extra) stops = stops.Concat(extra);
        }
        g = g with
        {
            StopStrings = stops.Where(s => s.Length > 0).Distinct(StringComparer.Ordinal).ToArray(),
            StopTokens = g.StopTokens.Concat(_formatter.StopTokens).Distinct().ToArray(),
        };
        g.Validate();
        return g;
    }

    /// <inheritdoc />
    /// <remarks>Answers <see cref="ChatClientMetadata"/>, this client, its <see cref="DecoderSession"/> and its <see cref="Microsoft.ML.Tokenizers.Tokenizer"/>; keyed requests get null.</remarks>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(Session)) return Session;
        if (serviceType.IsInstanceOfType(Tokenizer)) return Tokenizer;
        return null;
    }

    /// <summary>
    /// Stops reporting the profile's experts and ends the responses in progress (their streams throw
    /// <see cref="ObjectDisposedException"/>); the session and tokenizer are left open. Requests after it throw too.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _disposal.Cancel();             // terminates the run in flight through the generation's token
        _expertsTracking.Dispose();
        _conversations.Dispose();
    }

    private ObjectDisposedException Disposed(Exception inner) =>
        new($"the {nameof(BehemothChatClient)} was disposed while the response was generated", inner);

    /// <summary>One generation under the gate, logged and measured however it ends.</summary>
    private async IAsyncEnumerable<string> RunAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, GenerationStats stats, Turn turn,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var conversation = messages.ToList();
        RefuseUnsupported(conversation, options);
        if (options?.Instructions is { Length: > 0 } instructions) conversation.Insert(0, new ChatMessage(ChatRole.System, instructions));
        string prompt = _formatter.Format(conversation);
        var generation = ToGenerationOptions(options);

        // the caller's token, or the client's disposal
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposal.Token);
        try
        {
            await _gate.WaitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (_disposed && !cancellationToken.IsCancellationRequested)
        {
            throw Disposed(e);
        }
        bool logged = false, completed = false;
        string? conversationId = _conversations.MaxConversations > 0 ? options?.ConversationId : null;
        Generator? generator = null;
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var input = Encode(prompt, generation);
            generator = StartTurn(conversationId, generation, input, out int cached);
            turn.Cached = cached;
            var pieces = TextGenerator.StreamAsync(generator, Tokenizer, input.AsMemory(cached), stats, ownsGenerator: false, linked.Token).GetAsyncEnumerator(linked.Token);
            await using (pieces.ConfigureAwait(false))
            {
                while (true)
                {
                    try
                    {
                        if (!await pieces.MoveNextAsync().ConfigureAwait(false)) break;
                    }
                    catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                    {
                        RuntimeLog.GenerationCanceled(_logger, Session.Profile, _providerName, stats.GeneratedTokens);
                        logged = true;
                        throw;
                    }
                    catch (OperationCanceledException e) when (_disposed)
                    {
                        RuntimeLog.GenerationFailed(_logger, e, Session.Profile, _providerName, stats.GeneratedTokens);
                        logged = true;
                        throw Disposed(e);
                    }
                    catch (Exception e)
                    {
                        RuntimeLog.GenerationFailed(_logger, e, Session.Profile, _providerName, stats.GeneratedTokens);
                        logged = true;
                        throw;
                    }
                    yield return pieces.Current;
                }
            }
            completed = true;
        }
        finally
        {
            // a finished turn's cache is kept for the conversation; one that failed or was cut short is not reused
            if (generator is not null)
            {
                if (completed && conversationId is not null) _conversations.Put(conversationId, generator);
                else generator.Dispose();
            }
            _gate.Release();
            _metrics.RecordGeneration(stats, Session.Profile, Session.Provider);
            if (!logged)
                RuntimeLog.GenerationCompleted(_logger, Session.Profile, _providerName, stats.PromptTokens, stats.GeneratedTokens,
                    stats.TimeToFirstToken?.TotalMilliseconds, stats.DecodeTokensPerSecond, stats.StopReason);
        }
    }

    /// <summary>The prompt's ids, with the beginning-of-sequence token, fitted to the context as the options say.</summary>
    private int[] Encode(string prompt, GenerationOptions generation)
    {
        var ids = new List<int>();
        if (Session.Shape.BosTokenId is int bos) ids.Add(bos);
        ids.AddRange(Tokenizer.EncodeToIds(prompt));
        return TokenGenerator.FitPrompt(ids, generation, Session.Shape.ContextLength);
    }

    /// <summary>
    /// The generator for this turn: the conversation's, moved back to the longest prefix it shares with
    /// <paramref name="input"/> (<paramref name="cached"/> tokens; at least one token runs, for the logits), or a new one.
    /// </summary>
    private Generator StartTurn(string? conversationId, GenerationOptions generation, int[] input, out int cached)
    {
        cached = 0;
        var previous = conversationId is null ? null : _conversations.Take(conversationId);
        if (previous is null) return new Generator(Session, generation);
        var generator = previous.ContinueWith(generation);
        var held = generator.Tokens;
        int common = 0;
        while (common < held.Count && common < input.Length && held[common] == input[common]) common++;
        cached = Math.Min(common, input.Length - 1);
        generator.RewindTo(cached);
        return generator;
    }

    /// <summary>Options and contents this client cannot honour yet are refused, not dropped.</summary>
    private void RefuseUnsupported(List<ChatMessage> conversation, ChatOptions? options)
    {
        static NotSupportedException No(string what) => new($"{nameof(BehemothChatClient)} does not support {what} yet");
        if (options is not null)
        {
            if (options.Tools is { Count: > 0 }) throw No("ChatOptions.Tools (tool calling)");
            if (options.ToolMode is RequiredChatToolMode) throw No("ChatOptions.ToolMode = required (tool calling)");
            if (options.ResponseFormat is not null and not ChatResponseFormatText) throw No("ChatOptions.ResponseFormat other than text (JSON output)");
            if (options.FrequencyPenalty is not null) throw No("ChatOptions.FrequencyPenalty (use AdditionalProperties[\"repetition_penalty\"])");
            if (options.PresencePenalty is not null) throw No("ChatOptions.PresencePenalty (use AdditionalProperties[\"repetition_penalty\"])");
            if (options.ModelId is { } model && model != ModelId) throw No($"ChatOptions.ModelId '{model}' (this client serves '{ModelId}')");
            if (options.AllowBackgroundResponses == true || options.ContinuationToken is not null) throw No("background responses");
        }
        foreach (var m in conversation)
        {
            if (m.Role == ChatRole.Tool) throw No("tool-role messages");
            if (m.Contents.FirstOrDefault(c => c is not TextContent) is { } other) throw No($"{other.GetType().Name} in a {m.Role} message");
        }
    }

    private static ChatFinishReason? FinishReason(GenerationStats stats) => stats.StopReason switch
    {
        GenerationStopReason.EndOfSequence or GenerationStopReason.StopString => ChatFinishReason.Stop,
        GenerationStopReason.MaxTokens or GenerationStopReason.ContextFull => ChatFinishReason.Length,
        _ => null,
    };

    // the prompt as a whole: the tokens taken from a conversation's cache and those run
    private static UsageDetails Usage(GenerationStats stats, Turn turn) => new()
    {
        InputTokenCount = turn.Cached + stats.PromptTokens,
        CachedInputTokenCount = turn.Cached,
        OutputTokenCount = stats.GeneratedTokens,
        TotalTokenCount = turn.Cached + stats.PromptTokens + stats.GeneratedTokens,
    };

    /// <summary>What a request took from its conversation's cache.</summary>
    private sealed class Turn
    {
        public int Cached;
    }

    /// <summary>ChatOptions seeds are 64-bit; ones in int range are used as they are, others folded.</summary>
    private static int FoldSeed(long seed) => seed is >= int.MinValue and <= int.MaxValue ? (int)seed : unchecked((int)seed ^ (int)(seed >> 32));

    private static string NewId() => "behemoth-" + Guid.NewGuid().ToString("N");
}
