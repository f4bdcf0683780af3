using System.Diagnostics.Metrics;
using Behemoth.Package;
using Behemoth.Runtime.Generation;

namespace Behemoth.Runtime.Diagnostics;

/// <summary>
/// The runtime's <see cref="System.Diagnostics.Metrics"/> instruments, on a meter named <see cref="MeterName"/>:
/// <list type="table">
/// <item><term><c>behemoth.generation.time_to_first_token</c></term><description>histogram, ms: prefill plus the first sampling step</description></item>
/// <item><term><c>behemoth.generation.tokens_per_second</c></term><description>histogram, {token}/s: decode speed after the first token</description></item>
/// <item><term><c>behemoth.generation.tokens</c></term><description>counter, {token}: tagged <c>behemoth.token.type</c> = <c>prompt</c> | <c>generated</c></description></item>
/// <item><term><c>behemoth.experts.loaded</c></term><description>observable gauge, {expert}: routed experts of each loaded profile (see <see cref="TrackExperts"/>)</description></item>
/// </list>
/// Every measurement is tagged <c>behemoth.profile</c> and <c>behemoth.provider</c> (lower case: cpu, cuda, directml).
/// </summary>
/// <remarks>
/// Create one per <see cref="IMeterFactory"/> (a host's container does, see <c>AddBehemothChatClient</c>), or use
/// <see cref="Shared"/>, which sits on a process-wide static meter. Thread-safe.
/// </remarks>
public sealed class RuntimeMetrics
{
    /// <summary>The meter's name, what a metrics listener or OpenTelemetry's <c>AddMeter</c> subscribes to.</summary>
    public const string MeterName = "Behemoth.Runtime";
    /// <summary>The histogram of time to first token, in milliseconds.</summary>
    public const string TimeToFirstTokenName = "behemoth.generation.time_to_first_token";
    /// <summary>The histogram of decode speed after the first token, in tokens per second.</summary>
    public const string TokensPerSecondName = "behemoth.generation.tokens_per_second";
    /// <summary>The counter of tokens processed, tagged <see cref="TokenTypeTag"/>.</summary>
    public const string TokensName = "behemoth.generation.tokens";
    /// <summary>The observable gauge of routed experts per loaded profile.</summary>
    public const string ExpertsLoadedName = "behemoth.experts.loaded";

    /// <summary>The tag naming the device profile a measurement comes from.</summary>
    public const string ProfileTag = "behemoth.profile";
    /// <summary>The tag naming the execution provider, lower case (cpu, cuda, directml).</summary>
    public const string ProviderTag = "behemoth.provider";
    /// <summary>The tag of <see cref="TokensName"/>: <c>prompt</c> or <c>generated</c>.</summary>
    public const string TokenTypeTag = "behemoth.token.type";

    private static readonly Lazy<RuntimeMetrics> s_shared = new(() => new RuntimeMetrics(new Meter(MeterName)));

    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _tokensPerSecond;
    private readonly Counter<long> _tokens;
    private readonly List<LoadedProfile> _loaded = [];

    /// <summary>Instruments on a meter from <paramref name="meterFactory"/> (which owns and disposes it).</summary>
    public RuntimeMetrics(IMeterFactory meterFactory)
        : this((meterFactory ?? throw new ArgumentNullException(nameof(meterFactory))).Create(new MeterOptions(MeterName)))
    {
    }

    private RuntimeMetrics(Meter meter)
    {
        Meter = meter;
        _timeToFirstToken = meter.CreateHistogram(TimeToFirstTokenName, "ms", "Time from the start of a generation to its first new token (prefill and one sampling step)",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] });
        _tokensPerSecond = meter.CreateHistogram(TokensPerSecondName, "{token}/s", "Decode speed of a generation, after its first token",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] });
        _tokens = meter.CreateCounter<long>(TokensName, "{token}", "Tokens processed: prompt tokens prefilled and new tokens generated");
        meter.CreateObservableGauge(ExpertsLoadedName, ObserveExperts, "{expert}", "Routed experts held by each loaded device profile");
    }

    /// <summary>Instruments on a process-wide static meter named <see cref="MeterName"/>, for use without a host.</summary>
    public static RuntimeMetrics Shared => s_shared.Value;

    /// <summary>The meter the instruments are on.</summary>
    public Meter Meter { get; }

    /// <summary>Records one generation that has ended (whatever ended it): token counts, time to first token, decode speed.</summary>
    public void RecordGeneration(GenerationStats stats, string profile, ExecutionProvider provider)
    {
        ArgumentNullException.ThrowIfNull(stats);
        var tags = Tags(profile, provider);
        if (stats.PromptTokens > 0)
            _tokens.Add(stats.PromptTokens, [tags[0], tags[1], new(TokenTypeTag, "prompt")]);
        if (stats.GeneratedTokens > 0)
            _tokens.Add(stats.GeneratedTokens, [tags[0], tags[1], new(TokenTypeTag, "generated")]);
        if (stats.TimeToFirstToken is TimeSpan ttft)
            _timeToFirstToken.Record(ttft.TotalMilliseconds, tags);
        if (stats.DecodeTokensPerSecond is double speed)
            _tokensPerSecond.Record(speed, tags);
    }

    /// <summary>
    /// Reports <paramref name="session"/>'s routed experts on <c>behemoth.experts.loaded</c> until the returned handle is
    /// disposed (dispose it with the session).
    /// </summary>
    public IDisposable TrackExperts(DecoderSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        var entry = new LoadedProfile(this, CountRoutedExperts(session.Manifest, session.Profile), Tags(session.Profile, session.Provider));
        lock (_loaded) _loaded.Add(entry);
        return entry;
    }

    /// <summary>The routed experts <paramref name="profile"/> keeps, over all its MoE layers (shared experts are not counted).</summary>
    internal static int CountRoutedExperts(PackageManifest manifest, string profile)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (!manifest.Profiles.TryGetValue(profile, out var info))
            throw new ArgumentException($"the package has no profile '{profile}'", nameof(profile));
        return info.Experts.Sum(layer => layer.ExpertIds.Count);
    }

    /// <summary>The provider as it appears in tags and logs: cpu, cuda, directml.</summary>
    internal static string ProviderName(ExecutionProvider provider) => provider.ToString().ToLowerInvariant();

    private static KeyValuePair<string, object?>[] Tags(string profile, ExecutionProvider provider) =>
        [new(ProfileTag, profile), new(ProviderTag, ProviderName(provider))];

    private IEnumerable<Measurement<int>> ObserveExperts()
    {
        lock (_loaded) return _loaded.Select(p => new Measurement<int>(p.Experts, p.Tags)).ToArray();
    }

    private sealed class LoadedProfile(RuntimeMetrics owner, int experts, KeyValuePair<string, object?>[] tags) : IDisposable
    {
        public int Experts { get; } = experts;
        public KeyValuePair<string, object?>[] Tags { get; } = tags;

        public void Dispose()
        {
            lock (owner._loaded) owner._loaded.Remove(this);
        }
    }
}
