using System.Runtime.CompilerServices;

namespace Behemoth.GlassesCompanion.Tests;

/// <summary>
/// Gives the test host its own Console.Out and Console.Error writers before any test runs. Playwright sets
/// Console.OutputEncoding when it starts its driver; .NET's setter then flushes and drops the default Out and Error
/// writers under its console lock, while the console logger's thread, holding Error's writer lock mid-write, can
/// need that console lock to create Out again: a lock-order inversion that hung the test host (seen in a hang dump:
/// HudBrowserTests in Console.set_OutputEncoding, the ConsoleLoggerProcessor in ConsolePal.Write). Writers set with
/// SetOut and SetError are never dropped by that setter.
/// </summary>
internal static class ConsoleSetup
{
#pragma warning disable CA2255 // a test assembly's module initializer is the point: before any test thread starts
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void OwnWriters()
    {
        Console.SetOut(new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true });
        Console.SetError(new StreamWriter(Console.OpenStandardError()) { AutoFlush = true });
    }
}
