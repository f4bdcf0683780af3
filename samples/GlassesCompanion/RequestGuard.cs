using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Net.Http.Headers;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// The checks every request passes before pairing and the endpoints, against a web page in a browser on this machine or
/// the network reaching the app:
/// <list type="bullet">
/// <item>the <c>Host</c> header must name an address the app serves (loopback names and addresses, the addresses it is
/// bound to, this machine's own addresses and host name when bound to every address, and <see cref="GlassesOptions.AllowedHosts"/>),
/// else 421: a DNS-rebinding page (<c>evil.example</c> resolving to 127.0.0.1) is refused;</item>
/// <item>a POST body must be <c>application/json</c>, else 415: a cross-site page can send <c>text/plain</c> without a
/// CORS preflight, never <c>application/json</c>.</item>
/// </list>
/// </summary>
public sealed class RequestGuard
{
    private readonly HashSet<string> _hosts;

    public RequestGuard(IEnumerable<string> hosts) =>
        _hosts = new HashSet<string>(hosts.Select(Normalize).Where(h => h.Length > 0), StringComparer.OrdinalIgnoreCase);

    /// <summary>The host names a request may carry, lower case and without brackets or port.</summary>
    public IReadOnlyCollection<string> Hosts => _hosts;

    /// <summary>From the URLs the app listens on and the configured extra names.</summary>
    public static RequestGuard Create(GlassesOptions options, IEnumerable<string> urls)
    {
        var hosts = new List<string> { "localhost", "127.0.0.1", "::1" };
        foreach (string url in urls)
        {
            string host = Pairing.HostOf(url);
            if (host is "0.0.0.0" or "::" or "*" or "+")
                hosts.AddRange(MachineAddresses());
            else
                hosts.Add(host);
        }
        hosts.AddRange((options.AllowedHosts ?? []).Select(h => new HostString(h.Trim()).Host));     // a port given with a name is dropped
        return new RequestGuard(hosts);
    }

    /// <summary>This machine's host name (and its .local name) and the addresses of its network interfaces.</summary>
    private static IEnumerable<string> MachineAddresses()
    {
        string name = Dns.GetHostName();
        yield return name;
        yield return name + ".local";
        IEnumerable<IPAddress> addresses;
        try
        {
            addresses = NetworkInterface.GetAllNetworkInterfaces().SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address).ToArray();
        }
        catch (NetworkInformationException)
        {
            addresses = [];
        }
        foreach (var address in addresses)
        {
            var plain = address.AddressFamily == AddressFamily.InterNetworkV6 ? new IPAddress(address.GetAddressBytes()) : address;  // without %scope
            yield return plain.ToString();
        }
    }

    private static string Normalize(string host)
    {
        host = host.Trim().TrimEnd('.');
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        return host.ToLowerInvariant();
    }

    /// <summary>Whether the request's Host header (without its port) is one of <see cref="Hosts"/>; a loopback address always is.</summary>
    public bool IsAllowedHost(HostString host)
    {
        if (!host.HasValue) return false;
        string name = Normalize(host.Host);
        if (_hosts.Contains(name)) return true;
        return IPAddress.TryParse(name, out var ip) && IPAddress.IsLoopback(ip);
    }

    /// <summary>True for <c>application/json</c>, with or without parameters (<c>; charset=utf-8</c>).</summary>
    public static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media) && media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
        && (media.Charset.Length == 0 || media.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase));

    /// <summary>The middleware: 421 for another Host, 415 for a POST that is not JSON.</summary>
    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var request = context.Request;
        if (!IsAllowedHost(request.Host))
        {
            context.Response.StatusCode = StatusCodes.Status421MisdirectedRequest;
            await context.Response.WriteAsJsonAsync(new ErrorBody($"host '{request.Host.Host}' is not an address this app serves; "
                + "open it by an address it listens on, or add the name to Glasses:AllowedHosts"), GlassesJson.Default.ErrorBody).ConfigureAwait(false);
            return;
        }
        if (HttpMethods.IsPost(request.Method) && !IsJson(request.ContentType))
        {
            context.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            await context.Response.WriteAsJsonAsync(new ErrorBody($"the body must be application/json (UTF-8), not '{request.ContentType}'"),
                GlassesJson.Default.ErrorBody).ConfigureAwait(false);
            return;
        }
        await next().ConfigureAwait(false);
    }
}
