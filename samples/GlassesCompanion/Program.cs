using Behemoth.Samples.GlassesCompanion;

// dotnet run --project samples/GlassesCompanion -c Release [-- --urls http://0.0.0.0:5080] [--Glasses:Profile full]
// dotnet run --project samples/GlassesCompanion -c Release -- load [--clients 50] [--requests 5] [--url http://127.0.0.1:5080]
try
{
    if (args.Length > 0 && args[0] == "load")
        return await LoadTool.RunAsync(args[1..]);
    await using var app = await GlassesApp.CreateAsync(args);
    await app.RunAsync();
    return 0;
}
catch (GlassesConfigurationException e)
{
    Console.Error.WriteLine("error: " + e.Message);
    return 1;
}
catch (Exception e) when (e is Behemoth.Package.BehemothException or IOException)
{
    Console.Error.WriteLine("error: " + e.Message);
    return 1;
}
