using System.Text.Json;

namespace Behemoth.Formats.Config;

/// <summary>
/// Checks that every string and property name of a JSON document decodes to valid UTF-16. Valid UTF-8 bytes
/// can still escape a lone surrogate (<c>"\ud800"</c>), which System.Text.Json refuses only when the string is read.
/// </summary>
public static class JsonStrings
{
    public static bool AllDecodable(JsonElement element)
    {
        try
        {
            Walk(element);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static void Walk(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                _ = e.GetString();
                break;
            case JsonValueKind.Array:
                foreach (var item in e.EnumerateArray()) Walk(item);
                break;
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    _ = p.Name;
                    Walk(p.Value);
                }
                break;
        }
    }
}
