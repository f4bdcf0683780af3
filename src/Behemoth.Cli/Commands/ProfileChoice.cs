using System.CommandLine;
using System.Globalization;
using Behemoth.Formats.Errors;
using Behemoth.Runtime;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary>--profile NAME or --memory-budget SIZE (the largest profile that fits), shared by the commands that run a package.</summary>
internal sealed class ProfileChoice
{
    public Option<string?> Profile { get; } = new("--profile") { Description = "Device profile (default: full)" };

    public Option<string?> MemoryBudget { get; } = new("--memory-budget")
    {
        Description = "Load the largest profile whose weights and KV cache fit this much memory, e.g. 64MB, 1.5GiB",
    };

    public Option<string[]> Trust { get; } = TrustOption.Create();

    public Option<string?> Device { get; } = new("--device")
    {
        Description = "A device file (models/devices/*.json): load the profile named after the device, under the device's trusted_keys",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Profile);
        command.Options.Add(MemoryBudget);
        command.Options.Add(Trust);
        command.Options.Add(Device);
    }

    // --profile, --memory-budget or --device (at most one), and the keys of --trust and the device file together
    private (string? Profile, string? Budget, IReadOnlyList<TrustedKey> Keys) Choose(ParseResult parse)
    {
        string? profile = parse.GetValue(Profile), budget = parse.GetValue(MemoryBudget), device = parse.GetValue(Device);
        if (new[] { profile, budget, device }.Count(v => v is not null) > 1)
            throw new BehemothException("give one of --profile, --memory-budget and --device");
        var keys = TrustOption.Keys(parse, Trust);
        if (device is null) return (profile, budget, keys);
        var spec = Behemoth.Exporter.Pruning.DeviceSpec.Read(device);
        return (spec.Name, null, [.. keys, .. spec.LoadTrustedKeys()]);
    }

    /// <param name="contextTokens">The sequence length the KV cache must hold, for the budget.</param>
    /// <param name="intraOpThreads">ONNX Runtime threads per run (0: its default).</param>
    public DecoderSession Open(ParseResult parse, string package, int contextTokens, ExecutionProvider provider, CancellationToken cancellationToken, int intraOpThreads = 0)
    {
        var (profile, budget, keys) = Choose(parse);
        return budget is null
            ? DecoderSession.Open(package, profile ?? "full", provider, intraOpThreads, keys, cancellationToken)
            : DecoderSession.OpenWithinBudget(package, ParseSize(budget), contextTokens, provider, intraOpThreads, keys, cancellationToken);
    }

    /// <summary>The package as a <see cref="Model"/> (session, tokenizer, chat template and stop ids), the profile chosen as <see cref="Open"/> does.</summary>
    public Model OpenModel(ParseResult parse, string package, int contextTokens, ExecutionProvider provider, CancellationToken cancellationToken, int intraOpThreads = 0)
    {
        var (profile, budget, keys) = Choose(parse);
        return Model.Open(package, new ModelOptions
        {
            Profile = profile ?? "full",
            MemoryBudgetBytes = budget is null ? null : ParseSize(budget),
            ContextTokens = contextTokens,
            Provider = provider,
            IntraOpThreads = intraOpThreads,
            TrustedKeys = keys,
        }, cancellationToken);
    }

    /// <summary>"512MB", "1.5GB", "300MiB", "2G", or plain bytes. MB and GB are powers of ten, MiB and GiB of two.</summary>
    public static long ParseSize(string text)
    {
        string t = text.Trim();
        int split = 0;
        while (split < t.Length && (char.IsDigit(t[split]) || t[split] == '.')) split++;
        string unit = t[split..].Trim().ToUpperInvariant();
        double scale = unit switch
        {
            "" or "B" => 1,
            "K" or "KB" => 1e3, "KIB" => 1 << 10,
            "M" or "MB" => 1e6, "MIB" => 1 << 20,
            "G" or "GB" => 1e9, "GIB" => 1 << 30,
            _ => double.NaN,
        };
        if (split == 0 || double.IsNaN(scale) || !double.TryParse(t[..split], NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || value <= 0)
            throw new BehemothException($"memory size '{text}' is not valid: write a positive number with B, KB, MB, GB, KiB, MiB or GiB, e.g. 64MB");
        double bytes = value * scale;
        if (!(bytes < long.MaxValue))
            throw new BehemothException($"memory size '{text}' is too large: the most is {long.MaxValue / (double)(1L << 60):F0} EiB");
        return (long)bytes;
    }
}
