using Behemoth.Package;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Behemoth.Runtime;

/// <summary>
/// An ONNX Runtime session built from a profile's verified bytes (<see cref="VerifiedProfile"/>): the graph from memory,
/// and every weight the graph keeps externally handed over as an initializer over the checked buffer, so ONNX Runtime
/// reads nothing from the package files (overwriting them while the session runs changes nothing it computes).
/// </summary>
/// <remarks>
/// ONNX Runtime still checks that the external files the graph names exist (in the package folder, given as the
/// external-initializer folder), but takes the tensors given here instead of loading them. Initializers given this way
/// are pre-packed into <see cref="PrePackedWeightsContainer"/>, owned here like the buffers.
/// </remarks>
internal sealed class LoadedGraph : IDisposable
{
    private readonly List<OrtValue> _initializers;
    private readonly PrePackedWeightsContainer _prepacked;

    private LoadedGraph(InferenceSession session, VerifiedProfile verified, List<OrtValue> initializers, PrePackedWeightsContainer prepacked)
    {
        Session = session;
        Verified = verified;
        _initializers = initializers;
        _prepacked = prepacked;
    }

    public InferenceSession Session { get; }

    public VerifiedProfile Verified { get; }

    /// <summary>Verifies the profile, then builds the session on <paramref name="options"/>; <paramref name="verified"/> is called between.</summary>
    public static LoadedGraph Load(string directory, PackageManifest manifest, string profile, SessionOptions options, Action? verified, CancellationToken cancellationToken)
    {
        var checkedProfile = VerifiedProfile.Load(directory, manifest, profile, cancellationToken);
        var initializers = new List<OrtValue>();
        PrePackedWeightsContainer? prepacked = null;
        try
        {
            verified?.Invoke();
            options.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", Path.GetFullPath(directory));
            foreach (var t in checkedProfile.Tensors)
            {
                var value = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, ElementType(t, directory, checkedProfile), t.Dims,
                    checkedProfile.Address(t), t.Length);
                initializers.Add(value);
                options.AddInitializer(t.Name, value);
            }
            prepacked = new PrePackedWeightsContainer();
            var container = prepacked;
            InferenceSession session;
            try
            {
                session = ExecutionProviders.LoadingNative(() => new InferenceSession(checkedProfile.Graph, options, container));
            }
            catch (OnnxRuntimeException e)
            {
                // a graph that parses but that ONNX Runtime refuses (a hostile or broken export): bad input, not a crash
                throw new PackageFormatException(Path.Combine(directory, checkedProfile.Info.Graph), "ONNX Runtime cannot load this graph: " + e.Message);
            }
            return new LoadedGraph(session, checkedProfile, initializers, prepacked);
        }
        catch
        {
            prepacked?.Dispose();
            foreach (var v in initializers) v.Dispose();
            checkedProfile.Dispose();
            throw;
        }
    }

    private static TensorElementType ElementType(ExternalTensor t, string directory, VerifiedProfile profile) => t.DataType switch
    {
        1 => TensorElementType.Float,
        2 => TensorElementType.UInt8,
        3 => TensorElementType.Int8,
        4 => TensorElementType.UInt16,
        5 => TensorElementType.Int16,
        6 => TensorElementType.Int32,
        7 => TensorElementType.Int64,
        9 => TensorElementType.Bool,
        10 => TensorElementType.Float16,
        11 => TensorElementType.Double,
        12 => TensorElementType.UInt32,
        13 => TensorElementType.UInt64,
        16 => TensorElementType.BFloat16,
        _ => throw new PackageFormatException(Path.Combine(directory, profile.Info.Graph), $"tensor '{t.Name}' has ONNX data type {t.DataType}, which the runtime does not load"),
    };

    /// <summary>Frees the session, then what it used: the initializers, the pre-packed weights and the verified buffers.</summary>
    public void Dispose()
    {
        Session.Dispose();
        foreach (var v in _initializers) v.Dispose();
        _prepacked.Dispose();
        Verified.Dispose();
    }
}
