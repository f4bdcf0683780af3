using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Behemoth.Samples.GlassesCompanion;

/// <summary>
/// The pairing token. On loopback only this machine can connect, so nothing is asked; once the app listens on another
/// address every request must carry the token printed at start: header <c>X-Pairing-Token</c>, <c>Authorization:
/// Bearer</c>, query <c>?token=</c> (how the HUD page is opened on the glasses) or the cookie a valid query token sets,
/// so that the page's own scripts and styles load. Anything else is answered 401.
/// </summary>
public sealed class Pairing
{
    public const string Header = "X-Pairing-Token";
    public const string Query = "token";
    public const string Cookie = "glasses_pairing";

    private readonly byte[] _token;

    public Pairing(bool required, string token)
    {
        Required = required;
        Token = token;
        _token = Encoding.UTF8.GetBytes(token);
    }

    public bool Required { get; }
    public string Token { get; }

    /// <summary>Builds the pairing state from the settings and the addresses the app will listen on.</summary>
    public static Pairing Create(GlassesOptions options, IEnumerable<string> urls)
    {
        bool required = options.RequirePairing ?? urls.Any(u => !IsLoopbackUrl(u));
        string token = string.IsNullOrEmpty(options.PairingToken)
            ? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))
            : options.PairingToken;
        return new Pairing(required, token);
    }

    /// <summary>True for http://127.x.x.x, [::1] and localhost; false for 0.0.0.0, *, +, [::] and any other host.</summary>
    public static bool IsLoopbackUrl(string url)
    {
        string host = HostOf(url);
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return true;
        return IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip);
    }

    /// <summary>The host of a listen URL, without brackets or port: "0.0.0.0", "::", "*", "127.0.0.1", "glasses.local".</summary>
    public static string HostOf(string url)
    {
        // Kestrel's wildcard forms are not valid URIs ("http://*:5080", "http://+:5080")
        string host = url;
        int scheme = host.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0) host = host[(scheme + 3)..];
        int slash = host.IndexOf('/');
        if (slash >= 0) host = host[..slash];
        if (host.StartsWith('['))
            host = host[1..Math.Max(1, host.IndexOf(']'))];
        else if (host.LastIndexOf(':') is int colon and > 0)
            host = host[..colon];
        return host;
    }

    public bool IsPaired(HttpRequest request)
    {
        if (!Required) return true;
        if (request.Headers.TryGetValue(Header, out var header) && Matches(header.ToString())) return true;
        string auth = request.Headers.Authorization.ToString();
        if (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && Matches(auth["Bearer ".Length..].Trim())) return true;
        if (request.Query.TryGetValue(Query, out var query) && Matches(query.ToString())) return true;
        return request.Cookies.TryGetValue(Cookie, out var cookie) && Matches(cookie);
    }

    private bool Matches(string candidate) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(candidate), _token);

    /// <summary>The middleware: 401 without the token; a valid query token also sets the cookie.</summary>
    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        if (!IsPaired(context.Request))
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"glasses\"";
            await context.Response.WriteAsJsonAsync(new ErrorBody("pairing token required: open the page with ?token=<the token printed at start> "
                + "or send the X-Pairing-Token header"), GlassesJson.Default.ErrorBody).ConfigureAwait(false);
            return;
        }
        if (Required && context.Request.Query.ContainsKey(Query) && !context.Request.Cookies.ContainsKey(Cookie))
            context.Response.Cookies.Append(Cookie, Token, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/" });
        await next().ConfigureAwait(false);
    }
}
