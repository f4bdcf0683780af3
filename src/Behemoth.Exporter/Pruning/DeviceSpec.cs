using System.Text.Json;
using System.Text.Json.Serialization;
using Behemoth.Exporter.Export;
using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// A device profile file (<c>models/devices/*.json</c>): how much memory the model may use for weights and the KV
/// cache at a stated context length, how it runs there, and the mix of calibration domains it is for.
/// </summary>
public sealed record DeviceSpec
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("description")] public string Description { get; init; } = "";
    /// <summary>Memory for weights and KV cache together, bytes.</summary>
    [JsonPropertyName("memory_bytes")] public required long MemoryBytes { get; init; }
    /// <summary>The context length the KV cache is budgeted for.</summary>
    [JsonPropertyName("context_tokens")] public required int ContextTokens { get; init; }
    [JsonPropertyName("quantization")] public string Quantization { get; init; } = "int4";
    [JsonPropertyName("providers")] public IReadOnlyList<string> Providers { get; init; } = ["cpu"];
    [JsonPropertyName("threads")] public int Threads { get; init; }
    /// <summary>
    /// Public key files (<c>behemoth keygen</c>'s <c>.public</c>, paths relative to the device file) the device runs
    /// packages signed by; empty: signatures are not required. <c>run</c>, <c>eval</c>, <c>bench</c> and <c>batch</c>
    /// with <c>--device</c> load the device's profile under these keys.
    /// </summary>
    [JsonPropertyName("trusted_keys")] public IReadOnlyList<string> TrustedKeys { get; init; } = [];

    /// <summary>The device file this was read from (trusted key paths are relative to it).</summary>
    [JsonIgnore] public string? File { get; init; }

    /// <summary>The trusted keys, loaded (each path relative to the device file).</summary>
    public IReadOnlyList<TrustedKey> LoadTrustedKeys()
    {
        string baseDir = File is null ? "." : Path.GetDirectoryName(Path.GetFullPath(File))!;
        return [.. TrustedKeys.Select(k => TrustedKey.Load(Path.IsPathRooted(k) ? k : Path.Combine(baseDir, k)))];
    }

    /// <summary>Calibration domain → weight (the names of a stats file's domains).</summary>
    [JsonPropertyName("domains")] public required IReadOnlyDictionary<string, double> Domains { get; init; }

    public WeightType Quant => Quantization switch
    {
        "fp32" => WeightType.Fp32,
        "fp16" => WeightType.Fp16,
        "int8" => WeightType.Int8,
        "int4" => WeightType.Int4,
        _ => throw new BehemothException($"device '{Name}': quantization '{Quantization}' is not one of fp32, fp16, int8, int4"),
    };

    public static DeviceSpec Read(string path)
    {
        if (!System.IO.File.Exists(path)) throw new BehemothException($"{path}: no such device file");
        DeviceSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<DeviceSpec>(PackageFile.ReadInput(path));
        }
        catch (JsonException e)
        {
            throw new BehemothException($"{path}: not a device file ({e.Message}); expected name, memory_bytes, context_tokens, quantization, domains");
        }
        if (spec is null) throw new BehemothException($"{path}: empty device file");
        if (spec.MemoryBytes <= 0) throw new BehemothException($"{path}: memory_bytes must be positive");
        if (spec.ContextTokens <= 0) throw new BehemothException($"{path}: context_tokens must be positive");
        if (spec.Domains.Count == 0 || spec.Domains.Values.Any(w => !(w > 0)))
            throw new BehemothException($"{path}: domains must map at least one calibration domain to a positive weight");
        _ = spec.Quant;
        if (spec.TrustedKeys is null || spec.TrustedKeys.Any(k => string.IsNullOrWhiteSpace(k)))
            throw new BehemothException($"{path}: trusted_keys must be a list of public key file paths");
        spec = spec with { File = path };
        _ = spec.LoadTrustedKeys();     // a key that does not load is the device file's error, found now
        return spec;
    }
}
