using Behemoth.Package;
using System.Diagnostics;
using Behemoth.Runtime.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Behemoth.Runtime.Hosting;

/// <summary>Opens a <see cref="DecoderSession"/> and logs what was loaded, and how long it took.</summary>
public static class SessionLoader
{
    /// <summary>
    /// <see cref="DecoderSession.Open(string, string, ExecutionProvider, CancellationToken)"/>, then one log line: package,
    /// profile, the provider chosen, the files verified (count and bytes), the routed experts and the load time.
    /// </summary>
    public static DecoderSession Open(string packageDirectory, string profile, ExecutionProvider provider, ILogger? logger,
        CancellationToken cancellationToken = default)
        => Open(packageDirectory, profile, provider, intraOpThreads: 0, logger, cancellationToken);

    /// <summary>As above, with at most <paramref name="intraOpThreads"/> ONNX Runtime threads per run (0: its default).</summary>
    public static DecoderSession Open(string packageDirectory, string profile, ExecutionProvider provider, int intraOpThreads, ILogger? logger,
        CancellationToken cancellationToken = default)
        => Open(packageDirectory, PackageReader.ReadManifest(packageDirectory), profile, provider, intraOpThreads, logger, verified: null, cancellationToken);

    internal static DecoderSession Open(string packageDirectory, PackageManifest manifest, string profile, ExecutionProvider provider, int intraOpThreads, ILogger? logger,
        Action? verified, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(packageDirectory);
        ArgumentNullException.ThrowIfNull(profile);
        var clock = Stopwatch.StartNew();
        var session = DecoderSession.Open(packageDirectory, manifest, profile, provider, intraOpThreads, verified, cancellationToken);
        var elapsed = clock.Elapsed;
        try
        {
            if (logger is not null && logger.IsEnabled(LogLevel.Information))
            {
                manifest = session.Manifest;
                var info = manifest.Profiles[profile];
                var files = info.Files.Prepend(info.Graph).Distinct().ToArray();
                long bytes = files.Sum(f => manifest.Files.TryGetValue(f, out var entry) ? entry.Bytes : 0);
                RuntimeLog.SessionOpened(logger, Path.GetFullPath(packageDirectory), profile, RuntimeMetrics.ProviderName(session.Provider), files.Length, bytes,
                    RuntimeMetrics.CountRoutedExperts(manifest, profile), elapsed.TotalMilliseconds);
            }
        }
        catch
        {
            session.Dispose();      // a logger that throws must not leak the native session nobody else holds yet
            throw;
        }
        return session;
    }
}
