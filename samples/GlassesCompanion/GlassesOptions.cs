namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// The app's settings: section "Glasses" of appsettings.json, environment variables (<c>Glasses__Profile</c>) or the
/// command line (<c>--Glasses:Profile full</c>).
/// </summary>
public sealed class GlassesOptions
{
    public const string Section = "Glasses";

    /// <summary>The package directory; relative paths are taken from the repository root (or the working directory
    /// outside a checkout). Exported at first start when missing and <see cref="AutoExport"/> is on.</summary>
    public string Package { get; set; } = "behemoth-nano-int4";

    /// <summary>The device profile to load; when the package has no such profile, <see cref="FallbackProfile"/> is
    /// loaded instead and a warning is logged.</summary>
    public string Profile { get; set; } = "glasses";

    public string FallbackProfile { get; set; } = "full";

    /// <summary>auto | cpu | cuda | dml.</summary>
    public string Provider { get; set; } = "cpu";

    /// <summary>Export the package with the <c>behemoth</c> command when it is missing.</summary>
    public bool AutoExport { get; set; } = true;

    /// <summary>The checkpoint exported at first start; relative to the repository root.</summary>
    public string Model { get; set; } = "models/behemoth-nano";

    /// <summary>The quantization of that export.</summary>
    public string Quant { get; set; } = "int4";

    /// <summary>Expert statistics and device files the first-start export carves device profiles with (the glasses profile among them).</summary>
    public string Stats { get; set; } = "models/behemoth-nano/expert-stats.json";

    /// <summary>Folder of device files (<c>*.json</c>) for the first-start export.</summary>
    public string Devices { get; set; } = "models/devices";

    /// <summary>Path of <c>behemoth.dll</c>; empty: the CLI's bin folder in the repository, else <c>dotnet run --project src/Behemoth.Cli</c>.</summary>
    public string? Cli { get; set; }

    /// <summary>Longest input text, in characters; longer input is answered 413.</summary>
    public int MaxInputChars { get; set; } = 400;

    /// <summary>Cap on new tokens of one generation (a request may ask for fewer).</summary>
    public int MaxNewTokens { get; set; } = 64;

    /// <summary>Generations running at once on the one session (each with its own KV cache).</summary>
    public int MaxConcurrentGenerations { get; set; } = 2;

    /// <summary>Requests waiting for a generation slot; beyond it requests are answered 503.</summary>
    public int QueueLimit { get; set; } = 16;

    /// <summary>Whether every request must carry the pairing token: null (default) requires it when the app listens on
    /// any address other than loopback.</summary>
    public bool? RequirePairing { get; set; }

    /// <summary>The pairing token; empty: a random one is generated at start and printed once.</summary>
    public string? PairingToken { get; set; }

    /// <summary>Extra host names the <c>Host</c> header may carry (a DNS name of this machine, a reverse proxy's name),
    /// besides loopback, the addresses the app listens on and, when it listens on every address, this machine's own.</summary>
    public string[]? AllowedHosts { get; set; }

    /// <summary>Stop each mode at the first newline (the models' answer formats are one line).</summary>
    public bool StopAtNewline { get; set; } = true;

    /// <summary>
    /// Public key files (<c>behemoth keygen</c>'s <c>.public</c>): the package must be signed by one of them
    /// (<c>behemoth sign</c>), or the app refuses to start. Empty (the default): signatures are not checked.
    /// </summary>
    public string[] TrustedKeys { get; set; } = [];

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Package)) throw new GlassesConfigurationException("Glasses:Package is empty; give the package directory");
        if (string.IsNullOrWhiteSpace(Profile)) throw new GlassesConfigurationException("Glasses:Profile is empty; give a profile name such as glasses or full");
        if (MaxInputChars < 1) throw new GlassesConfigurationException($"Glasses:MaxInputChars is {MaxInputChars}; it must be at least 1");
        if (MaxNewTokens < 1) throw new GlassesConfigurationException($"Glasses:MaxNewTokens is {MaxNewTokens}; it must be at least 1");
        if (MaxConcurrentGenerations < 1) throw new GlassesConfigurationException($"Glasses:MaxConcurrentGenerations is {MaxConcurrentGenerations}; it must be at least 1");
        if (QueueLimit < 0) throw new GlassesConfigurationException($"Glasses:QueueLimit is {QueueLimit}; it must not be negative");
        foreach (string host in AllowedHosts ?? [])
            if (string.IsNullOrWhiteSpace(host) || host.IndexOfAny(['*', '/', ' ', ',']) >= 0)
                throw new GlassesConfigurationException($"Glasses:AllowedHosts entry '{host}' is not a host name (no wildcards, schemes or paths: e.g. glasses-hub.lan)");
        if (PairingToken is { Length: > 0 and < 16 }) throw new GlassesConfigurationException("Glasses:PairingToken must be at least 16 characters (or empty for a random one)");
    }
}

/// <summary>A setting or the set-up is wrong; the message says what to change or which command to run.</summary>
public sealed class GlassesConfigurationException(string message, Exception? inner = null) : Exception(message, inner);
