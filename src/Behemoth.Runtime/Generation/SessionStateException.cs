using Behemoth.Package;

namespace Behemoth.Runtime.Generation;

/// <summary>A saved generator state that cannot be restored here: another package or profile, or a damaged file.</summary>
public sealed class SessionStateException(string stateName, string message) : BehemothException($"{stateName}: {message}")
{
    /// <summary>The state file (or stream) at fault.</summary>
    public string StateName { get; } = stateName;
}
