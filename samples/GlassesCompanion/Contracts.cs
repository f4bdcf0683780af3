using System.Text.Json;
using System.Text.Json.Serialization;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>POST /api/generate body: <c>{"mode": "translate", "text": "Good morning", "maxTokens": 24}</c>.</summary>
public sealed record GenerateRequest(string? Mode, string? Text, int? MaxTokens);

/// <summary>Every error answer: one sentence saying what was wrong.</summary>
public sealed record ErrorBody(string Error);

/// <summary>Server-sent event "piece": the next piece of streamed text.</summary>
public sealed record PieceEvent(string Text);

/// <summary>Server-sent event "done": what the generation did (times in milliseconds).</summary>
public sealed record DoneEvent(
    double? TtftMs, double? TokensPerSecond, int PromptTokens, int GeneratedTokens, string StopReason, double QueueMs, double TotalMs, string Profile);

/// <summary>GET /api/info: the model loaded, the limits, and counters since start.</summary>
public sealed record InfoBody(
    string Package, string Profile, string RequestedProfile, string Provider, string[] Modes, int MaxInputChars, int MaxNewTokens,
    int MaxConcurrentGenerations, int QueueLimit, bool PairingRequired, MonitorSnapshot Generations, long PeakRssBytes);

public sealed record MonitorSnapshot(int Active, int Queued, long Completed, long Cancelled, long Rejected, long Failed);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(GenerateRequest))]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(PieceEvent))]
[JsonSerializable(typeof(DoneEvent))]
[JsonSerializable(typeof(InfoBody))]
public sealed partial class GlassesJson : JsonSerializerContext;
