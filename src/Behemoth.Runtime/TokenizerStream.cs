namespace Behemoth.Runtime;

/// <summary>
/// Incremental detokenization: <see cref="Decode"/> takes the next id and returns the text it completes. Only a short
/// window of recent ids is decoded each time (not the whole output), and text that ends inside a multi-byte
/// character (byte-fallback pieces decode to U+FFFD until the character is whole) is held back until it is complete.
/// </summary>
public sealed class TokenizerStream
{
    // The window starts a few ids back so that merges and leading spaces decode as they do in the full text.
    private const int Context = 4;

    // A character takes at most four byte pieces; past this many ids still not decoding to new whole text, the bytes are
    // not a character being completed (stray continuation bytes a sampled model emits): they are given out as they
    // decode (U+FFFD included), so the window stays short and a step costs the same however long the output.
    private const int MaxHeld = 8;

    private readonly Func<IEnumerable<int>, string> _decode;
    private readonly List<int> _ids = [];
    private int _prefix;      // first id of the decoding window
    private int _read;        // ids whose text has been returned
    private string? _before;  // the text of [_prefix, _read), when known

    internal TokenizerStream(Tokenizer tokenizer, int? previousToken) : this(tokenizer.Inner, previousToken) { }

    internal TokenizerStream(Microsoft.ML.Tokenizers.Tokenizer tokenizer, int? previousToken)
        : this(ids => tokenizer.Decode(ids) ?? "", previousToken) { }

    /// <summary>Over any decode function (tests count the ids it is given).</summary>
    internal TokenizerStream(Func<IEnumerable<int>, string> decode, int? previousToken)
    {
        _decode = decode;
        if (previousToken is int id)
        {
            _ids.Add(id);
            _read = 1;
        }
    }

    /// <summary>The text <paramref name="id"/> adds (empty while a character is still incomplete).</summary>
    public string Decode(int id)
    {
        _ids.Add(id);
        string before = _before ??= DecodeRange(_prefix, _read);
        string after = DecodeRange(_prefix, _ids.Count);
        bool extends = after.Length > before.Length && after.StartsWith(before, StringComparison.Ordinal);
        if (!extends || after.EndsWith('\uFFFD'))
        {
            if (_ids.Count - _read < MaxHeld) return "";
            // held too long: give out what decodes now and start the window again after it
            string held = extends ? after[before.Length..] : "";
            (_read, _prefix, _before) = (_ids.Count, Math.Max(0, _ids.Count - Context), null);
            return held;
        }
        string text = after[before.Length..];
        _read = _ids.Count;
        // the window moves forward in jumps, so most steps decode once: the text just decoded is the next "before"
        if (_read - _prefix > 3 * Context)
        {
            _prefix = _read - Context;
            _before = null;
        }
        else _before = after;
        return text;
    }

    /// <summary>Whatever is held back at the end (an incomplete character decodes without its missing bytes).</summary>
    public string Flush()
    {
        if (_read == _ids.Count) return "";
        string before = _before ?? DecodeRange(_prefix, _read), after = DecodeRange(_prefix, _ids.Count);
        _read = _ids.Count;
        _before = null;
        return after.Length > before.Length && after.StartsWith(before, StringComparison.Ordinal) ? after[before.Length..].TrimEnd('\uFFFD') : "";
    }

    private string DecodeRange(int from, int to) => from >= to ? "" : _decode(_ids.GetRange(from, to - from));
}
