using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>One server-sent event: its name and data line(s).</summary>
public sealed record SseEvent(string Name, string Data);

/// <summary>A minimal client of POST /api/generate (the load tool and the tests use it).</summary>
public static class SseClient
{
    /// <summary>Sends the request; the response is returned as soon as its headers arrive (the body streams).</summary>
    public static Task<HttpResponseMessage> PostAsync(HttpClient client, GenerateRequest body, string? token = null, CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/generate")
        {
            Content = JsonContent.Create(body, GlassesJson.Default.GenerateRequest),
        };
        if (token is not null) request.Headers.Add(Pairing.Header, token);
        return client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    /// <summary>The events of a text/event-stream body, as they arrive.</summary>
    public static async IAsyncEnumerable<SseEvent> ReadEventsAsync(HttpResponseMessage response, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        string name = "message";
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0) yield return new SseEvent(name, data.ToString());
                name = "message";
                data.Clear();
            }
            else if (line.StartsWith("event:", StringComparison.Ordinal)) name = line["event:".Length..].Trim();
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                if (data.Length > 0) data.Append('\n');
                data.Append(line["data:".Length..].TrimStart());
            }
        }
    }
}
