using Behemoth.Formats.Config;
using Behemoth.Formats.Description;

namespace Behemoth.Formats.Architectures;

/// <summary>
/// Every architecture Behemoth knows, by the name Hugging Face writes in <c>architectures[0]</c>.
/// An unknown name is refused with the list of supported ones.
/// </summary>
public static class ArchitectureRegistry
{
    private static readonly SortedDictionary<string, Architecture> All = new(
        new Architecture[]
        {
            new Mixtral(), new Qwen2Moe(), new Qwen3Moe(), new Olmoe(), new Llama4(), new Llama4Conditional(),
            new DeepseekV2(), new DeepseekV3(), new PhiMoe(), new GptOss(),
        }.ToDictionary(a => a.Name, StringComparer.Ordinal),
        StringComparer.Ordinal);

    /// <summary>Architectures the engines run.</summary>
    public static IEnumerable<string> Runnable => All.Values.Where(a => a.IsRunnable).Select(a => a.Name);

    /// <summary>Architectures that can only be inspected.</summary>
    public static IEnumerable<string> DescribedOnly => All.Values.Where(a => !a.IsRunnable).Select(a => a.Name);

    /// <summary>The architecture named by <c>architectures[0]</c> of <paramref name="config"/>.</summary>
    public static Architecture Resolve(ConfigReader config)
    {
        var names = config.OptionalStringArray("architectures");
        if (names is null || names.Length == 0)
            throw config.Error("architectures", $"required list is missing or empty (supported: {string.Join(", ", Runnable)})");
        return All.TryGetValue(names[0], out var arch)
            ? arch
            : throw config.Error("architectures", $"unsupported architecture '{names[0]}' (supported: {string.Join(", ", Runnable)}; inspect only: {string.Join(", ", DescribedOnly)})");
    }

    /// <summary>Reads a runnable model's config; an inspect-only architecture is refused with the runnable list.</summary>
    public static DecoderConfig ReadDecoder(ConfigReader config)
    {
        var arch = Resolve(config);
        if (arch is not DecoderArchitecture decoder)
            throw config.Error("architectures", $"'{arch.Name}' can be inspected but not run (runnable: {string.Join(", ", Runnable)})");
        return decoder.Read(config);
    }

    public static ModelDescription Describe(ConfigReader config) => Resolve(config).Describe(config);

    /// <summary>Loads config.json from a model directory or a direct path to a config file.</summary>
    public static ConfigReader LoadConfig(string modelDirOrConfig)
    {
        string path = Directory.Exists(modelDirOrConfig) ? Path.Combine(modelDirOrConfig, "config.json") : modelDirOrConfig;
        if (!File.Exists(path))
            throw new Errors.ModelConfigException(path, Directory.Exists(modelDirOrConfig) ? "the model directory has no config.json" : "no such file");
        return ConfigReader.Load(path);
    }
}
