using Behemoth.Package;
using Behemoth.Runtime.Chat;
using Behemoth.Runtime.Diagnostics;
using Behemoth.Runtime.Generation;
using Behemoth.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Behemoth.Runtime;

/// <summary>
/// A loaded package profile with everything generation needs, in the spirit of onnxruntime-genai's <c>Model</c>: the
/// ONNX Runtime session, the tokenizer, the chat template and the ids that stop a reply, all from the package itself.
/// Generate with <see cref="CreateGenerator"/> (one step at a time), <see cref="GenerateAsync"/> (streamed text) or
/// <see cref="AsChatClient"/> (Microsoft.Extensions.AI).
/// </summary>
/// <example>
/// <code>
/// using var model = Model.Open("behemoth-nano-int4", new ModelOptions { Profile = "glasses" });
/// await foreach (string piece in model.GenerateAsync("English: Good morning\nItalian:", new GenerationOptions { MaxNewTokens = 20 }))
///     Console.Write(piece);
/// </code>
/// </example>
public sealed class Model : IDisposable
{
    private Model(DecoderSession session, Tokenizer tokenizer, ChatTemplate template)
    {
        Session = session;
        Tokenizer = tokenizer;
        ChatTemplate = template;
        StopTokenIds = [.. tokenizer.EosTokenIds.Union(tokenizer.Loaded.StopTokenIds(template))];
    }

    /// <summary>The ONNX Runtime session of the profile (owned by the model).</summary>
    public DecoderSession Session { get; }

    /// <summary>The package's tokenizer, with the package's beginning- and end-of-sequence ids.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>The chat template the package's model type and vocabulary select (or the one <see cref="ModelOptions.ChatTemplate"/> named).</summary>
    public ChatTemplate ChatTemplate { get; }

    /// <summary>Ids that end a reply: the package's end-of-sequence ids and the chat template's end-of-turn tokens.</summary>
    public IReadOnlyList<int> StopTokenIds { get; }

    /// <summary>The package directory.</summary>
    public string Directory => Session.Directory;

    /// <summary>The profile loaded.</summary>
    public string Profile => Session.Profile;

    /// <summary>
    /// Opens the package in <paramref name="packageDirectory"/>: verifies the profile's files, creates the session and
    /// loads the tokenizer and chat template. What fails is disposed before the exception leaves.
    /// </summary>
    public static Model Open(string packageDirectory, ModelOptions? options = null, CancellationToken cancellationToken = default)
        => Load(packageDirectory, options ?? new ModelOptions(), progress: null, cancellationToken);

    /// <summary>As <see cref="Open"/>, off the caller's thread, reporting each stage to <paramref name="progress"/>.</summary>
    public static Task<Model> OpenAsync(string packageDirectory, ModelOptions? options = null, IProgress<ModelLoadStage>? progress = null,
        CancellationToken cancellationToken = default)
        => Task.Run(() => Load(packageDirectory, options ?? new ModelOptions(), progress, cancellationToken), cancellationToken);

    private static Model Load(string packageDirectory, ModelOptions options, IProgress<ModelLoadStage>? progress, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(packageDirectory);
        options.Validate();
        progress?.Report(ModelLoadStage.ReadingManifest);
        var manifest = PackageReader.ReadManifest(packageDirectory, options.TrustedKeys);
        string profile = options.MemoryBudgetBytes is long budget
            ? ProfileSelection.Largest(manifest, packageDirectory, budget, Math.Min(options.ContextTokens ?? manifest.Model.ContextLength, manifest.Model.ContextLength))
            : options.Profile;
        progress?.Report(ModelLoadStage.VerifyingFiles);
        cancellationToken.ThrowIfCancellationRequested();
        var session = Hosting.SessionLoader.Open(packageDirectory, manifest, profile, options.Provider, options.IntraOpThreads, options.Logger,
            () => progress?.Report(ModelLoadStage.CreatingSession), cancellationToken);
        try
        {
            progress?.Report(ModelLoadStage.LoadingTokenizer);
            var loaded = options.Tokenizer is { } own
                ? new LoadedTokenizer(own, "custom", "", family: null, new Dictionary<string, int>(), bos: null, eos: null)
                : Tokenizer.OpenPackageTokenizer(packageDirectory, manifest, cancellationToken);
            var tokenizer = new Tokenizer(loaded, manifest.Model.BosTokenId, manifest.Model.EosTokenIds);
            // the tokenizer's own chat_template when it is a known family, else by the manifest's model_type
            string? notice = null;
            var template = options.ChatTemplate is { } name ? Text.ChatTemplate.FromName(name)
                : Text.ChatTemplate.ForTokenizer(manifest.ModelType, loaded, options.RequireRecognizedChatTemplate, out notice);
            if (notice is not null) options.Logger?.LogWarning("{Package}: {Notice}", packageDirectory, notice);
            var model = new Model(session, tokenizer, template) { ChatTemplateNotice = notice };
            progress?.Report(ModelLoadStage.Ready);
            return model;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Why the chat template is not the model's own (its chat_template is none of the supported families), or null.</summary>
    public string? ChatTemplateNotice { get; private init; }

    /// <summary>
    /// A generator for one sequence on this model, stopping at <see cref="StopTokenIds"/> (the caller disposes it, before the model).
    /// </summary>
    public Generator CreateGenerator(GenerationOptions? options = null) => new(Session, options, StopTokenIds);

    /// <summary>
    /// <paramref name="prompt"/> (with the beginning-of-sequence id) in, streamed text out; a prompt longer than the
    /// context leaves room for is refused or truncated as <see cref="GenerationOptions.Overflow"/> says.
    /// </summary>
    public IAsyncEnumerable<string> GenerateAsync(string prompt, GenerationOptions? options = null, GenerationStats? stats = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new GenerationOptions();
        var input = TokenGenerator.FitPrompt(Tokenizer.Encode(prompt, addBos: true), options, Session.Shape.ContextLength);
        var generator = CreateGenerator(options);
        return DisposeAfter(TextGenerator.StreamAsync(generator, Tokenizer, input, stats, cancellationToken), generator);
    }

    private static async IAsyncEnumerable<string> DisposeAfter(IAsyncEnumerable<string> pieces, IDisposable owned)
    {
        using (owned)
            await foreach (var piece in pieces.ConfigureAwait(false))
                yield return piece;
    }

    /// <summary>
    /// A Microsoft.Extensions.AI chat client over this model with its own chat template and stop ids (the model must
    /// outlive it).
    /// </summary>
    public BehemothChatClient AsChatClient(BehemothChatClientOptions? options = null, ILogger? logger = null, RuntimeMetrics? metrics = null)
    {
        // the package's template unless the caller chose a formatter; the caller's options object is left as it is
        var used = new BehemothChatClientOptions { Generation = options?.Generation ?? new(), ModelId = options?.ModelId };
        used.PromptFormatter = options is not null && !ReferenceEquals(options.PromptFormatter, ChatPromptFormatter.Plain)
            ? options.PromptFormatter
            : ChatPromptFormatter.FromTemplate(ChatTemplate, Tokenizer.Loaded);
        return new BehemothChatClient(Session, Tokenizer.Inner, used, logger, metrics);
    }

    /// <summary>Frees the session (waiting for or terminating runs in flight); idempotent.</summary>
    public void Dispose() => Session.Dispose();
}
