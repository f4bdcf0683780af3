using Behemoth.Exporter.Export;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>What a runtime caller gets wrong is refused before ONNX Runtime runs, with what was expected.</summary>
public sealed class DecoderSessionTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly DecoderSession _session;

    public DecoderSessionTests()
    {
        PackageExporter.Export(TestPaths.Golden("mixtral"), _temp.File("pkg"), new ExportOptions { MaxContext = 16 }, overwrite: false);
        _session = DecoderSession.Open(_temp.File("pkg"));
    }

    public void Dispose()
    {
        _session.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void Token_ids_outside_the_vocabulary_are_refused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _session.Forward([1, 512], _session.NewCache()));
        Assert.Contains("512", e.Message);
        Assert.Contains("[0, 512)", e.Message);
    }

    [Fact]
    public void Running_past_the_context_length_is_refused_and_the_cache_is_kept()
    {
        Assert.Equal(16, _session.Shape.ContextLength);
        var cache = _session.NewCache();
        _session.Forward(Enumerable.Range(1, 10).ToArray(), cache);
        var e = Assert.Throws<InvalidOperationException>(() => _session.Forward(Enumerable.Range(1, 7).ToArray(), cache));
        Assert.Contains("context length of 16", e.Message);
        Assert.Equal(10, cache.Length);
        Assert.Equal(6 * 512, _session.Forward(Enumerable.Range(1, 6).ToArray(), cache).Length);
    }

    [Fact]
    public void A_cancelled_token_stops_before_running()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var cache = _session.NewCache();
        Assert.Throws<OperationCanceledException>(() => _session.Forward([1, 2, 3], cache, cts.Token));
        Assert.Equal(0, cache.Length);
    }
}

/// <summary>Execution providers: auto falls back to what loads, an explicit provider that cannot load says what is missing.</summary>
public sealed class ExecutionProviderTests
{
    [Fact]
    public void Auto_runs_where_it_can_and_explicit_providers_explain_what_is_missing()
    {
        using var temp = new TempDirectory();
        string dir = TestPaths.Golden("mixtral");
        PackageExporter.Export(dir, temp.File("pkg"), new ExportOptions(), overwrite: false);
        using (var auto = DecoderSession.Open(temp.File("pkg"), "full", ExecutionProvider.Auto))
        {
            Assert.Contains(auto.Provider, new[] { ExecutionProvider.Cpu, ExecutionProvider.Cuda });
            Assert.Equal(512, auto.Forward([1, 2, 3], auto.NewCache()).Length / 3);
        }
        try
        {
            using var cuda = DecoderSession.Open(temp.File("pkg"), "full", ExecutionProvider.Cuda);
            Assert.Equal(ExecutionProvider.Cuda, cuda.Provider);      // a machine with the CUDA 13 libraries
        }
        catch (ExecutionProviderException e)
        {
            Assert.Contains("CUDA 13", e.Message);
        }
        if (!OperatingSystem.IsWindows())
        {
            var e = Assert.Throws<ExecutionProviderException>(() => DecoderSession.Open(temp.File("pkg"), "full", ExecutionProvider.DirectML));
            Assert.Contains("DirectML", e.Message);
        }
    }
}
