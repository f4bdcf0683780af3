namespace Behemoth.Runtime;

/// <summary>How <see cref="Model.Open"/> loads a package: which profile, on which provider, with how many threads.</summary>
public sealed record ModelOptions
{
    /// <summary>The device profile to load (default "full"). Ignored when <see cref="MemoryBudgetBytes"/> is set.</summary>
    public string Profile { get; init; } = "full";

    /// <summary>
    /// When set, the profile with the most weights whose weights and the KV cache of <see cref="ContextTokens"/> fit
    /// this many bytes is loaded instead of <see cref="Profile"/> (a <see cref="Package.ProfileBudgetException"/>
    /// lists each profile's needs when none does).
    /// </summary>
    public long? MemoryBudgetBytes { get; init; }

    /// <summary>The sequence length the memory budget must hold a KV cache for; null: the package's context length.</summary>
    public int? ContextTokens { get; init; }

    /// <summary>The execution provider (default <see cref="ExecutionProvider.Auto"/>: CUDA, DirectML on Windows, then CPU).</summary>
    public ExecutionProvider Provider { get; init; } = ExecutionProvider.Auto;

    /// <summary>ONNX Runtime intra-op threads per run (0: its default, one per core; at most 4 × the logical cores).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Logs one line when the session is open (package, profile, provider, files verified, load time); none when null.</summary>
    public Microsoft.Extensions.Logging.ILogger? Logger { get; init; }

    /// <summary>A chat template by name (see <see cref="Text.ChatTemplate.Names"/>) instead of the package's own.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>
    /// Refuse a package whose own chat_template is none of the supported families (a
    /// <see cref="Text.TokenizerFormatException"/>), instead of falling back to the template its model_type suggests
    /// with a warning (<see cref="Model.ChatTemplateNotice"/>, also logged). Default false.
    /// </summary>
    public bool RequireRecognizedChatTemplate { get; init; }

    /// <summary>
    /// A tokenizer to use instead of the package's own files (for a package that ships none, such as a test
    /// checkpoint's); it has no special tokens, so the chat template is the model type's plain form. Null: the package's.
    /// </summary>
    public Microsoft.ML.Tokenizers.Tokenizer? Tokenizer { get; init; }

    /// <summary>
    /// Public keys (<c>behemoth keygen</c> <c>.public</c> files, <see cref="Package.TrustedKey.Load"/>) the package must be
    /// signed by; empty (the default): signatures are not checked. With keys, an unsigned package, one signed by
    /// another key, or any byte changed after signing is refused (<see cref="Package.PackageTrustException"/>).
    /// </summary>
    public IReadOnlyList<Package.TrustedKey> TrustedKeys { get; init; } = [];

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(Profile);
        if (MemoryBudgetBytes is <= 0) throw new ArgumentOutOfRangeException(nameof(MemoryBudgetBytes), MemoryBudgetBytes, "must be positive");
        if (ContextTokens is <= 0) throw new ArgumentOutOfRangeException(nameof(ContextTokens), ContextTokens, "must be positive");
        DecoderSession.CheckThreads(IntraOpThreads);
        ArgumentNullException.ThrowIfNull(TrustedKeys);
    }
}

/// <summary>Where <see cref="Model.OpenAsync"/> is.</summary>
public enum ModelLoadStage
{
    /// <summary>Reading the manifest and choosing the profile.</summary>
    ReadingManifest,

    /// <summary>Checking the size and SHA-256 of the profile's files.</summary>
    VerifyingFiles,

    /// <summary>ONNX Runtime is building the session (weights read, kernels prepared).</summary>
    CreatingSession,

    /// <summary>Loading the tokenizer and the chat template.</summary>
    LoadingTokenizer,

    /// <summary>Loaded.</summary>
    Ready,
}
