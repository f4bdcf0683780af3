using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Threading.RateLimiting;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// The companion app: a HUD page and one streaming endpoint, over one model session.
/// <code>
/// GET  /                 the HUD page (hud/index.html)
/// GET  /api/info         model, profile, limits, counters
/// POST /api/generate     {"mode": "translate|answer|summary", "text": "…", "maxTokens": n} → text/event-stream:
///                        event "piece" {"text"} …, then "done" {"ttftMs", "tokensPerSecond", …} (or "error" {"error"})
/// </code>
/// </summary>
public static class GlassesApp
{
    public const string DefaultUrl = "http://127.0.0.1:5080";

    /// <summary>Largest request body Kestrel accepts (the text limit itself is <see cref="GlassesOptions.MaxInputChars"/>).</summary>
    public const long MaxRequestBodyBytes = 16 * 1024;

    /// <summary>
    /// Builds the app: reads the settings, exports the package if it is missing, loads the model, maps the endpoints.
    /// <paramref name="configure"/> runs after the settings are read and before anything is decided from them.
    /// </summary>
    public static async Task<WebApplication> CreateAsync(string[] args, Action<WebApplicationBuilder>? configure = null, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        // every log line goes to stderr; stdout carries only the announcement (addresses and the pairing token)
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        configure?.Invoke(builder);

        var options = builder.Configuration.GetSection(GlassesOptions.Section).Get<GlassesOptions>() ?? new GlassesOptions();
        options.Validate();
        if (string.IsNullOrEmpty(builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey)) && !builder.Configuration.GetSection("Kestrel:Endpoints").Exists())
            builder.WebHost.UseUrls(DefaultUrl);
        var urls = (builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey) ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Concat(builder.Configuration.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"] ?? ""))
            .Where(u => u.Length > 0).ToArray();
        var pairing = Pairing.Create(options, urls);
        var guard = RequestGuard.Create(options, urls);

        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = MaxRequestBodyBytes);

        using var setupLogs = LoggerFactory.Create(l =>
        {
            l.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
            l.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            LogRedaction.Apply(l.Services, pairing.Token);
        });
        var setupLog = setupLogs.CreateLogger("GlassesCompanion.Setup");
        string? repoRoot = PackageSetup.FindRepoRoot(AppContext.BaseDirectory, Directory.GetCurrentDirectory());
        string package = await PackageSetup.EnsurePackageAsync(options, repoRoot, setupLog, cancellationToken).ConfigureAwait(false);
        var model = ModelHost.Open(package, options, setupLog);

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(pairing);
        builder.Services.AddSingleton(guard);
        builder.Services.AddSingleton(model);
        builder.Services.AddSingleton<GenerationMonitor>();
        builder.Services.AddSingleton(new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = options.MaxConcurrentGenerations,
            QueueLimit = options.QueueLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        }));

        LogRedaction.Apply(builder.Services, pairing.Token);      // every logger the app hands out redacts, whatever providers a caller added
        var app = builder.Build();
        app.Use((context, next) => guard.InvokeAsync(context, () => next(context)));
        app.Use((context, next) => pairing.InvokeAsync(context, () => next(context)));

        var hud = new PhysicalFileProvider(Path.Combine(AppContext.BaseDirectory, "hud"));
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = hud });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = hud,
            OnPrepareResponse = c => c.Context.Response.Headers.CacheControl = "no-cache",
        });
        app.MapGet("/api/info", Info);
        app.MapPost("/api/generate", GenerateAsync);

        app.Lifetime.ApplicationStarted.Register(() => Announce(app, pairing, model));
        return app;
    }

    /// <summary>
    /// Prints where the app listens and, when pairing is on, the token: once, on stdout, the token alone on its last line
    /// (for a script: <c>tail -n 1</c>). The logs go to stderr and never carry it (<see cref="LogRedaction"/>).
    /// </summary>
    private static void Announce(WebApplication app, Pairing pairing, ModelHost model)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var text = new StringBuilder();
        text.AppendLine($"Glasses companion: {model.Session.Directory} profile '{model.Session.Profile}' on {model.Session.Provider}");
        foreach (var bound in addresses)
        {
            // a wildcard address is not one to open: the glasses need this machine's address on their network
            var uri = new Uri(bound.Replace("://*:", "://0.0.0.0:", StringComparison.Ordinal).Replace("://+:", "://0.0.0.0:", StringComparison.Ordinal));
            string address = uri.Host is "0.0.0.0" or "[::]" ? $"{uri.Scheme}://<this machine's address>:{uri.Port}" : bound;
            text.AppendLine(pairing.Required ? $"  HUD: {address}/?{Pairing.Query}={pairing.Token}" : $"  HUD: {address}/");
        }
        if (pairing.Required)
        {
            text.AppendLine($"  Pairing token (shown once, never logged; header {Pairing.Header}, or ?{Pairing.Query}= in the page address):");
            text.AppendLine(pairing.Token);
        }
        Console.Out.Write(text.ToString());
        Console.Out.Flush();
    }

    private static IResult Info(ModelHost model, GlassesOptions options, Pairing pairing, GenerationMonitor monitor) =>
        Results.Json(new InfoBody(
            Path.GetFileName(model.Session.Directory.TrimEnd(Path.DirectorySeparatorChar)), model.Session.Profile, model.RequestedProfile,
            model.Session.Provider.ToString().ToLowerInvariant(), [.. Enum.GetValues<GlassesMode>().Select(Modes.Name)], options.MaxInputChars,
            options.MaxNewTokens, options.MaxConcurrentGenerations, options.QueueLimit, pairing.Required, monitor.Snapshot(),
            GenerationMonitor.PeakRssBytes()), GlassesJson.Default.InfoBody);

    private static Task Error(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new ErrorBody(message), GlassesJson.Default.ErrorBody, cancellationToken: context.RequestAborted);
    }

    private static async Task GenerateAsync(HttpContext context, ModelHost model, GlassesOptions options, ConcurrencyLimiter gate,
        GenerationMonitor monitor, ILoggerFactory loggers)
    {
        var aborted = context.RequestAborted;
        var log = loggers.CreateLogger("GlassesCompanion.Generate");

        // 1. the request, checked before it takes a slot
        GenerateRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync(context.Request.Body, GlassesJson.Default.GenerateRequest, aborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await Error(context, 413, $"the request body is over {MaxRequestBodyBytes} bytes").ConfigureAwait(false);
            return;
        }
        catch (BadHttpRequestException e)
        {
            await Error(context, e.StatusCode, e.Message).ConfigureAwait(false);
            return;
        }
        catch (JsonException e)
        {
            await Error(context, 400, "the body is not JSON of the form {\"mode\": \"translate\", \"text\": \"…\"}: " + e.Message).ConfigureAwait(false);
            return;
        }
        if (request is null || !Modes.TryParse(request.Mode, out var mode))
        {
            await Error(context, 400, $"mode '{request?.Mode}' is not one of translate, answer, summary").ConfigureAwait(false);
            return;
        }
        string text = request.Text?.Trim() ?? "";
        if (text.Length == 0)
        {
            await Error(context, 400, "text is empty").ConfigureAwait(false);
            return;
        }
        if (text.Length > options.MaxInputChars)
        {
            await Error(context, 413, $"text has {text.Length} characters; the limit is {options.MaxInputChars}").ConfigureAwait(false);
            return;
        }
        if (request.MaxTokens is < 1)
        {
            await Error(context, 400, $"maxTokens is {request.MaxTokens}; it must be at least 1").ConfigureAwait(false);
            return;
        }
        int maxTokens = Math.Min(request.MaxTokens ?? Modes.DefaultMaxTokens(mode), options.MaxNewTokens);
        string prompt = Modes.Prompt(mode, text);
        int promptTokens = model.Tokenizer.CountTokens(prompt) + 1;
        if (promptTokens + maxTokens > model.Session.Shape.ContextLength)
        {
            await Error(context, 413, $"the prompt is {promptTokens} tokens; with {maxTokens} new tokens it exceeds the context of {model.Session.Shape.ContextLength}").ConfigureAwait(false);
            return;
        }

        // 2. a generation slot, or a place in the bounded queue, or 503
        var clock = Stopwatch.StartNew();
        RateLimitLease lease;
        monitor.Waiting();
        try
        {
            lease = await gate.AcquireAsync(1, aborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            monitor.Cancel();
            return;
        }
        finally
        {
            monitor.DoneWaiting();
        }
        using var _ = lease;
        if (!lease.IsAcquired)
        {
            monitor.Reject();
            context.Response.Headers.RetryAfter = "1";
            await Error(context, 503, $"busy: {options.MaxConcurrentGenerations} generations are running and {options.QueueLimit} are waiting; retry shortly").ConfigureAwait(false);
            return;
        }
        var queueTime = clock.Elapsed;

        // 3. stream the text as server-sent events
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        var generation = new GenerationOptions
        {
            MaxNewTokens = maxTokens,
            StopStrings = options.StopAtNewline ? ["\n"] : [],
        };
        var stats = new GenerationStats();
        monitor.Started();
        try
        {
            await context.Response.StartAsync(aborted).ConfigureAwait(false);
            await context.Response.Body.FlushAsync(aborted).ConfigureAwait(false);     // the headers go out now, before the prefill
            if (monitor.Hold is { } hold)
                await hold(aborted).ConfigureAwait(false);
            await foreach (var piece in model.Model.GenerateAsync(prompt, generation, stats, aborted).ConfigureAwait(false))
                await WriteEventAsync(context.Response, "piece", JsonSerializer.Serialize(new PieceEvent(piece), GlassesJson.Default.PieceEvent), aborted).ConfigureAwait(false);
            var done = new DoneEvent(stats.TimeToFirstToken?.TotalMilliseconds, stats.DecodeTokensPerSecond, stats.PromptTokens, stats.GeneratedTokens,
                stats.StopReason.ToString(), queueTime.TotalMilliseconds, clock.Elapsed.TotalMilliseconds, model.Session.Profile);
            await WriteEventAsync(context.Response, "done", JsonSerializer.Serialize(done, GlassesJson.Default.DoneEvent), aborted).ConfigureAwait(false);
            monitor.Complete();
        }
        catch (Exception) when (aborted.IsCancellationRequested)
        {
            // the client went away: an OperationCanceledException, or ONNX Runtime's own error when the run it was in
            // is terminated by the cancellation
            monitor.Cancel();
            log.LogDebug("Client went away; generation stopped after {Tokens} tokens", stats.GeneratedTokens);
        }
        catch (Exception e) when (e is Behemoth.Package.BehemothException or ArgumentException or InvalidOperationException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            monitor.Fail();
            log.LogError(e, "Generation failed");
            if (!aborted.IsCancellationRequested)
                await WriteEventAsync(context.Response, "error", JsonSerializer.Serialize(new ErrorBody(e.Message), GlassesJson.Default.ErrorBody), CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            monitor.Ended();
        }
    }

    private static async Task WriteEventAsync(HttpResponse response, string name, string json, CancellationToken cancellationToken)
    {
        await response.WriteAsync($"event: {name}\ndata: {json}\n\n", cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
