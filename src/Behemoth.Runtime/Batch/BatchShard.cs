using System.Globalization;
using System.Text;

namespace Behemoth.Runtime.Batch;

/// <summary>
/// Shard <see cref="Index"/> of <see cref="Count"/>: a line belongs to the shard where
/// FNV-1a-64(UTF-8 of its id's text) mod Count == Index. The id's text is a string id's characters or a number id's
/// digits as written in the input (<c>"a-1"</c> → <c>a-1</c>, <c>42</c> → <c>42</c>); a line with no usable id hashes
/// <c>line:N</c>. The hash does not depend on the machine, the process or .NET's randomized string hashing, so N
/// processes anywhere split a file the same way, and a line stays in its shard when other lines are added or removed.
/// </summary>
public readonly record struct BatchShard
{
    /// <summary>Shard <paramref name="index"/> (0-based) of <paramref name="count"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1, or <paramref name="index"/> is outside [0, count).</exception>
    public BatchShard(int index, int count)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "there must be at least one shard");
        if (index < 0 || index >= count) throw new ArgumentOutOfRangeException(nameof(index), index, $"must be in [0, {count})");
        (Index, Count) = (index, count);
    }

    /// <summary>0-based, as Kubernetes' JOB_COMPLETION_INDEX and a Slurm array starting at 0 give it.</summary>
    public int Index { get; }

    /// <summary>How many shards the input is split into (1: no split).</summary>
    public int Count { get; }

    /// <summary>Every line, in one shard.</summary>
    public static BatchShard All { get; } = new(0, 1);

    /// <summary>"i/N", e.g. "0/4" (the first of four).</summary>
    /// <exception cref="BatchJobException">The text is not i/N with 0 ≤ i &lt; N.</exception>
    public static BatchShard Parse(string text)
    {
        string[] parts = text.Split('/');
        if (parts.Length == 2
            && int.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            && int.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            && n >= 1 && i < n)
            return new BatchShard(i, n);
        throw new BatchJobException($"shard '{text}' is not valid: write i/N with 0 ≤ i < N, e.g. 0/4 (the index counts from 0)");
    }

    /// <summary>Whether <paramref name="line"/> falls in this shard (by the hash of its <see cref="BatchLine.ShardText"/>).</summary>
    public bool Contains(BatchLine line) => Count == 1 || (int)(Fnv1a64(line.ShardText) % (ulong)Count) == Index;

    /// <summary>64-bit FNV-1a over the UTF-8 bytes of <paramref name="text"/>.</summary>
    public static ulong Fnv1a64(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return hash;
    }

    /// <summary>"i/N", the form <see cref="Parse"/> reads.</summary>
    public override string ToString() => $"{Index}/{Count}";
}
