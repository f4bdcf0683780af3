using System.Diagnostics;
using System.Reflection;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Text;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Behemoth.Arm64.Runner;

/// <summary>
/// Two jobs, both run the same way on x64 and (under qemu-user) on linux-arm64:
/// <c>tests ASSEMBLY:CLASS[,CLASS...]...</c> runs those xunit v2 test classes in this process, through xunit's own
/// execution engine (dotnet test's vstest host cannot be emulated: it is started by an x64 vstest console), printing
/// one line per failed or skipped test and <c>xunit: P passed, F failed, S skipped</c>, exit 1 on any failure;
/// <c>greedy PACKAGE PROMPT MAX_TOKENS OUT</c> writes the greedy token ids (prompt with BOS, then the generated ones)
/// to OUT, one per line.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        try
        {
            return args switch
            {
                ["tests", .. var selection] when selection.Length > 0 => RunTests(selection),
                ["greedy", var package, var prompt, var max, var output] => Greedy(package, prompt, int.Parse(max, System.Globalization.CultureInfo.InvariantCulture), output),
                _ => Usage(),
            };
        }
        catch (Exception e) when (e is IOException or ArgumentException or FormatException or InvalidOperationException)
        {
            Console.Error.WriteLine($"behemoth-arm64-runner: {e.Message}");
            return 1;
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: behemoth-arm64-runner tests ASSEMBLY:CLASS[,CLASS...]... | greedy PACKAGE PROMPT MAX_TOKENS OUT");
        return 1;
    }

    private static int Greedy(string package, string prompt, int maxTokens, string output)
    {
        using var session = DecoderSession.Open(package);
        var tokenizer = ModelTokenizer.Load(package);
        var ids = new List<int>();
        if (session.Shape.BosTokenId is int bos) ids.Add(bos);
        ids.AddRange(tokenizer.EncodeToIds(prompt));
        var options = new GenerationOptions { MaxNewTokens = maxTokens, Temperature = 0 };
        var all = new List<int>(ids);
        var generate = TokenGenerator.GenerateAsync(session, ids, options).GetAsyncEnumerator();
        try
        {
            while (generate.MoveNextAsync().AsTask().GetAwaiter().GetResult()) all.Add(generate.Current);
        }
        finally
        {
            generate.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        File.WriteAllLines(output, all.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Console.WriteLine($"greedy: {ids.Count} prompt + {all.Count - ids.Count} generated tokens -> {output}");
        return 0;
    }

    private static int RunTests(string[] selection)
    {
        var clock = Stopwatch.StartNew();
        var sink = new ResultSink();
        foreach (string item in selection)
        {
            string[] parts = item.Split(':', 2);
            if (parts.Length != 2 || parts[1].Length == 0) throw new ArgumentException($"'{item}': expected ASSEMBLY:CLASS[,CLASS...]");
            var classes = parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
            RunAssembly(parts[0], classes, sink);
        }
        Console.WriteLine($"xunit: {sink.Passed} passed, {sink.Failed} failed, {sink.Skipped} skipped ({clock.Elapsed.TotalSeconds:F0} s)");
        return sink.Failed == 0 && sink.Passed > 0 ? 0 : 1;
    }

    private static void RunAssembly(string name, HashSet<string> classes, ResultSink sink)
    {
        var assembly = Assembly.Load(new AssemblyName(name));
        var diagnostics = new DiagnosticSink();
        using var framework = new XunitTestFramework(diagnostics);

        var found = new DiscoverySink();
        using (var discoverer = framework.GetDiscoverer(Reflector.Wrap(assembly)))
        {
            discoverer.Find(includeSourceInformation: false, found, new FrameworkOptions());
            found.Done.Wait();
        }
        // a class by its short or full name; every one asked for must exist, so that a rename cannot empty the run
        bool Wanted(ITestCase c) => classes.Contains(c.TestMethod.TestClass.Class.Name) || classes.Contains(ShortName(c.TestMethod.TestClass.Class.Name));
        var cases = found.Cases.Where(Wanted).ToList();
        var missing = classes.Where(k => !cases.Any(c => c.TestMethod.TestClass.Class.Name == k || ShortName(c.TestMethod.TestClass.Class.Name) == k)).ToList();
        if (missing.Count > 0) throw new ArgumentException($"{name}: no tests in class(es) {string.Join(", ", missing)}");
        Console.WriteLine($"{name}: {cases.Count} tests in {classes.Count} classes");

        using var executor = framework.GetExecutor(assembly.GetName());
        sink.Finished.Reset();
        executor.RunTests(cases, sink, new FrameworkOptions());
        sink.Finished.Wait();
    }

    private static string ShortName(string fullName) => fullName[(fullName.LastIndexOf('.') + 1)..];

    /// <summary>xunit's discovery and execution options: defaults everywhere (parallel collections, pre-enumerated theories).</summary>
    private sealed class FrameworkOptions : ITestFrameworkDiscoveryOptions, ITestFrameworkExecutionOptions
    {
        private readonly Dictionary<string, object?> values = [];

        public TValue GetValue<TValue>(string name) => values.TryGetValue(name, out var v) && v is TValue t ? t : default!;

        public void SetValue<TValue>(string name, TValue value) => values[name] = value;
    }

    private sealed class DiagnosticSink : Xunit.LongLivedMarshalByRefObject, IMessageSink
    {
        public bool OnMessage(IMessageSinkMessage message)
        {
            if (message is IDiagnosticMessage d) Console.Error.WriteLine($"xunit: {d.Message}");
            return true;
        }
    }

    private sealed class DiscoverySink : Xunit.LongLivedMarshalByRefObject, IMessageSink
    {
        public List<ITestCase> Cases { get; } = [];
        public ManualResetEventSlim Done { get; } = new();

        public bool OnMessage(IMessageSinkMessage message)
        {
            if (message is ITestCaseDiscoveryMessage found) Cases.Add(found.TestCase);
            else if (message is IDiscoveryCompleteMessage) Done.Set();
            return true;
        }
    }

    private sealed class ResultSink : Xunit.LongLivedMarshalByRefObject, IMessageSink
    {
        private readonly Lock gate = new();
        public int Passed { get; private set; }
        public int Failed { get; private set; }
        public int Skipped { get; private set; }
        public ManualResetEventSlim Finished { get; } = new();

        public bool OnMessage(IMessageSinkMessage message)
        {
            lock (gate)
            {
                switch (message)
                {
                    case ITestPassed:
                        Passed++;
                        break;
                    case ITestFailed failed:
                        Failed++;
                        Console.WriteLine($"FAIL {failed.Test.DisplayName}: {Describe(failed)}");
                        break;
                    case ITestSkipped skipped:
                        Skipped++;
                        Console.WriteLine($"SKIP {skipped.Test.DisplayName}: {skipped.Reason}");
                        break;
                    case IFailureInformation other:         // class or collection fixture, cleanup, catastrophic errors
                        Failed++;
                        Console.WriteLine($"FAIL ({message.GetType().Name}): {Describe(other)}");
                        break;
                    case ITestAssemblyFinished:
                        Finished.Set();
                        break;
                }
            }
            return true;
        }

        private static string Describe(IFailureInformation failure)
        {
            string text = string.Join(" / ", failure.ExceptionTypes.Zip(failure.Messages, (t, m) => $"{t}: {m}"));
            string? stack = failure.StackTraces.FirstOrDefault();
            return stack is null ? text : text + Environment.NewLine + stack;
        }
    }
}
