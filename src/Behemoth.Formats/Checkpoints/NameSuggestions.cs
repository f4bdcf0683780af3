namespace Behemoth.Formats.Checkpoints;

/// <summary>Finds the names closest to a misspelled one, for "did you mean" hints in error messages.</summary>
internal static class NameSuggestions
{
    public static IReadOnlyList<string> Closest(string wanted, IEnumerable<string> names, int count)
    {
        int limit = Math.Max(3, wanted.Length / 3);
        return names
            .Select(n => (Name: n, Distance: Distance(wanted, n, limit)))
            .Where(x => x.Distance <= limit)
            .OrderBy(x => x.Distance).ThenBy(x => x.Name, StringComparer.Ordinal)
            .Take(count).Select(x => x.Name).ToList();
    }

    // Levenshtein distance, giving up (returning limit + 1) once every cell of a row exceeds the limit.
    private static int Distance(string a, string b, int limit)
    {
        if (Math.Abs(a.Length - b.Length) > limit) return limit + 1;
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            int rowMin = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
                rowMin = Math.Min(rowMin, current[j]);
            }
            if (rowMin > limit) return limit + 1;
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
