using Behemoth.Package;

namespace Behemoth.Formats.Errors;

// The family's base, BehemothException, lives in Behemoth.Package, so the exporter, the runtime and the command line share it.

/// <summary>A safetensors file or checkpoint directory is malformed, truncated or inconsistent.</summary>
public sealed class CheckpointFormatException : BehemothException
{
    public CheckpointFormatException(string filePath, string message, string? tensor = null, Exception? inner = null)
        : base(Compose(filePath, tensor, message), inner)
    {
        FilePath = filePath;
        TensorName = tensor;
    }

    /// <summary>The tensor the problem concerns, when there is one.</summary>
    public string? TensorName { get; }

    private static string Compose(string file, string? tensor, string message) =>
        tensor is null ? $"{file}: {message}" : $"{file}: tensor '{tensor}': {message}";
}

/// <summary>config.json is missing a field, has a field of the wrong type, or describes something unsupported.</summary>
public sealed class ModelConfigException : BehemothException
{
    public ModelConfigException(string filePath, string message, string? field = null)
        : base(field is null ? $"{filePath}: {message}" : $"{filePath}: field '{field}': {message}")
    {
        FilePath = filePath;
        Field = field;
    }

    /// <summary>The config field (dotted path for nested objects) the problem concerns.</summary>
    public string? Field { get; }
}
