using Behemoth.Package;
using Behemoth.Runtime;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// The app's one model (<see cref="Model"/>: the session, tokenizer and stop ids of the package), shared by every request. ONNX Runtime runs
/// concurrent <c>Run</c> calls on one session safely, and each generation has its own KV cache, so the limit on
/// generations at once (<see cref="GlassesOptions.MaxConcurrentGenerations"/>) bounds memory, not correctness.
/// </summary>
public sealed class ModelHost : IDisposable
{
    private ModelHost(Model model, string requestedProfile)
    {
        Model = model;
        RequestedProfile = requestedProfile;
    }

    public Model Model { get; }
    public DecoderSession Session => Model.Session;
    public Tokenizer Tokenizer => Model.Tokenizer;
    public string RequestedProfile { get; }

    /// <summary>The profile to load: <paramref name="options"/>.Profile when the package has it, else the fallback with a warning.</summary>
    public static string ChooseProfile(PackageManifest manifest, GlassesOptions options, string package, ILogger logger)
    {
        if (manifest.Profiles.ContainsKey(options.Profile)) return options.Profile;
        string has = string.Join(", ", manifest.Profiles.Keys.Order(StringComparer.Ordinal));
        if (!string.IsNullOrEmpty(options.FallbackProfile) && manifest.Profiles.ContainsKey(options.FallbackProfile))
        {
            logger.LogWarning("The package {Package} has no '{Profile}' profile (it has {Profiles}); loading '{Fallback}' instead. "
                + "Export one with device profiles, or set Glasses:Profile.", package, options.Profile, has, options.FallbackProfile);
            return options.FallbackProfile;
        }
        throw new GlassesConfigurationException($"{package} has no profile '{options.Profile}' (nor the fallback '{options.FallbackProfile}'); it has {has}. Set Glasses:Profile to one of them");
    }

    public static ModelHost Open(string package, GlassesOptions options, ILogger logger)
    {
        var provider = ParseProvider(options.Provider);
        var keys = options.TrustedKeys.Select(TrustedKey.Load).ToArray();
        // the profile names only; Model.Open reads the manifest again and checks it (and its signature) once
        var manifest = PackageReader.ReadManifest(package);
        string profile = ChooseProfile(manifest, options, package, logger);
        var model = Model.Open(package, new ModelOptions { Profile = profile, Provider = provider, Logger = logger, TrustedKeys = keys });
        return new ModelHost(model, options.Profile);
    }

    public static ExecutionProvider ParseProvider(string name) => name.ToLowerInvariant() switch
    {
        "auto" => ExecutionProvider.Auto,
        "cpu" => ExecutionProvider.Cpu,
        "cuda" => ExecutionProvider.Cuda,
        "dml" or "directml" => ExecutionProvider.DirectML,
        _ => throw new GlassesConfigurationException($"Glasses:Provider is '{name}'; expected auto, cpu, cuda or dml"),
    };

    public void Dispose() => Model.Dispose();
}
