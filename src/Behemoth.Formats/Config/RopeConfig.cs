namespace Behemoth.Formats.Config;

/// <summary>
/// Rotary position embedding parameters, read from <c>rope_parameters</c> (newer configs) or
/// <c>rope_theta</c> + <c>rope_scaling</c> (older ones). <see cref="Type"/> is kept as written so that a config
/// with a scaling the engines do not implement can still be inspected; <see cref="EnsureSupported"/> refuses it.
/// </summary>
public sealed record RopeConfig(
    string Type,
    double Theta,
    double Factor = 1,
    double LowFreqFactor = 1,
    double HighFreqFactor = 4,
    int OriginalMaxPositions = 8192,
    string SourceField = "rope_scaling")
{
    public static readonly IReadOnlyList<string> SupportedTypes = ["default", "linear", "llama3"];

    public void EnsureSupported(string configPath)
    {
        if (!SupportedTypes.Contains(Type))
            throw new Errors.ModelConfigException(configPath,
                $"RoPE scaling type '{Type}' is not supported (supported: {string.Join(", ", SupportedTypes)})", SourceField);
    }

    /// <summary>
    /// Inverse frequencies θ^(−2i/d) for i &lt; d/2, with linear or llama3 scaling applied, computed in
    /// double precision (the Hugging Face rope initialisation functions define the math).
    /// </summary>
    public double[] InverseFrequencies(int rotaryDim)
    {
        var inv = new double[rotaryDim / 2];
        for (int i = 0; i < inv.Length; i++)
            inv[i] = 1.0 / Math.Pow(Theta, 2.0 * i / rotaryDim);

        switch (Type)
        {
            case "linear":
                for (int i = 0; i < inv.Length; i++) inv[i] /= Factor;
                break;
            case "llama3":
                // Long wavelengths are slowed by `factor`, short ones kept, and the band between interpolated
                // (empty when the two factors are equal, as in Llama-4-Scout).
                double lowFreqWavelen = OriginalMaxPositions / LowFreqFactor;
                double highFreqWavelen = OriginalMaxPositions / HighFreqFactor;
                for (int i = 0; i < inv.Length; i++)
                {
                    double wavelen = 2 * Math.PI / inv[i];
                    if (wavelen > lowFreqWavelen)
                        inv[i] /= Factor;
                    else if (wavelen >= highFreqWavelen && HighFreqFactor != LowFreqFactor)
                    {
                        double smooth = (OriginalMaxPositions / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                        inv[i] = (1 - smooth) * inv[i] / Factor + smooth * inv[i];
                    }
                }
                break;
        }
        return inv;
    }

    /// <summary>Reads the RoPE settings of one (text) config object.</summary>
    public static RopeConfig Read(ConfigReader c, double defaultTheta)
    {
        double topTheta = c.Double("rope_theta", defaultTheta);
        var parameters = c.OptionalObject("rope_parameters");
        var scaling = c.OptionalObject("rope_scaling");
        // rope_scaling carries the scaling actually used by older transformers; rope_parameters is its newer spelling.
        var source = scaling ?? parameters;
        string field = scaling is not null ? "rope_scaling" : "rope_parameters";
        if (source is null)
            return new RopeConfig("default", topTheta, SourceField: "rope_theta");
        string type = source.OptionalString("rope_type") ?? source.OptionalString("type") ?? "default";
        double theta = parameters?.Double("rope_theta", topTheta) ?? topTheta;
        return new RopeConfig(
            type,
            theta,
            Factor: source.Double("factor", 1),
            LowFreqFactor: source.Double("low_freq_factor", 1),
            HighFreqFactor: source.Double("high_freq_factor", 4),
            OriginalMaxPositions: source.Int("original_max_position_embeddings", c.Int("max_position_embeddings", 8192)),
            SourceField: source.PathOf("rope_type"));
    }
}
