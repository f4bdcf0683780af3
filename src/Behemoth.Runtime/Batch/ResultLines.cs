using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Behemoth.Runtime.Batch;

/// <summary>
/// The lines of a results file, read through one buffer: memory stays bounded by the longest line (at most
/// <see cref="MaxLineBytes"/>), not the file, and offsets and line numbers are 64-bit, so a file of any size is read.
/// </summary>
internal sealed class ResultLines
{
    /// <summary>The longest line read (64 MiB): far beyond any record a job writes, so a longer one is not a record.</summary>
    public const int MaxLineBytes = 64 << 20;

    private readonly Stream _stream;
    private readonly string _path;
    private long _end;
    private byte[] _buffer;
    private int _start, _count;        // the unread bytes are _buffer[_start .. _start + _count)
    private long _bufferOffset;        // the file offset of _buffer[0]
    private long _read;                // the file offset the next read starts at

    /// <summary>Reads <paramref name="stream"/> from <paramref name="start"/> to <paramref name="end"/>.</summary>
    public ResultLines(Stream stream, string path, long start, long end, int bufferBytes = 64 * 1024)
    {
        _stream = stream;
        _path = path;
        _end = end;
        _buffer = new byte[Math.Max(16, bufferBytes)];
        _bufferOffset = _read = start;
        stream.Position = start;
    }

    /// <summary>The 1-based number of the line <see cref="Next"/> returned last.</summary>
    public long Number { get; private set; }

    /// <summary>The file offset of the line <see cref="Next"/> returned last.</summary>
    public long Offset { get; private set; }

    /// <summary>
    /// The next line, without its newline; <paramref name="complete"/> is false for a last line with no newline.
    /// The span is valid until the next call.
    /// </summary>
    /// <exception cref="BatchJobException">A line is longer than <see cref="MaxLineBytes"/>.</exception>
    public bool Next(out ReadOnlySpan<byte> line, out bool complete)
    {
        int searched = 0;      // bytes of the unread part already searched for a newline
        while (true)
        {
            int newline = _buffer.AsSpan(_start + searched, _count - searched).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                newline += searched;
                line = _buffer.AsSpan(_start, newline);
                Offset = _bufferOffset + _start;
                Number++;
                _start += newline + 1;
                _count -= newline + 1;
                complete = true;
                return true;
            }
            searched = _count;
            if (_read >= _end)
            {
                complete = false;
                if (_count == 0)
                {
                    line = default;
                    return false;
                }
                line = _buffer.AsSpan(_start, _count);
                Offset = _bufferOffset + _start;
                Number++;
                _start += _count;
                _count = 0;
                return true;
            }
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _count);
                _bufferOffset += _start;
                _start = 0;
            }
            if (_count == _buffer.Length)
            {
                if (_buffer.Length > MaxLineBytes)
                    throw new BatchJobException($"{_path}:{Number + 1}: the line is over {MaxLineBytes >> 20} MiB, so it is not a batch result record");
                Array.Resize(ref _buffer, (int)Math.Min(2L * _buffer.Length, MaxLineBytes + 1L));
            }
            int n = _stream.Read(_buffer, _count, (int)Math.Min(_buffer.Length - _count, _end - _read));
            if (n == 0)
            {
                _end = _read;          // the file is shorter than it was
                continue;
            }
            _count += n;
            _read += n;
        }
    }

    /// <summary>The end of the last complete line of the first <paramref name="length"/> bytes: after the last newline (0 when none), found from the end.</summary>
    public static long EndOfLastLine(Stream stream, long length)
    {
        var buffer = new byte[64 * 1024];
        long position = length;
        while (position > 0)
        {
            int n = (int)Math.Min(buffer.Length, position);
            position -= n;
            stream.Position = position;
            stream.ReadExactly(buffer, 0, n);
            int newline = buffer.AsSpan(0, n).LastIndexOf((byte)'\n');
            if (newline >= 0) return position + newline + 1;
        }
        return 0;
    }

    /// <summary>
    /// The key of one results line (UTF-8, without its newline; a trailing '\r' is allowed), or null when it is not a
    /// record: not valid UTF-8, not one JSON object, "id", "line", "output" or "error" given twice, neither "output"
    /// nor "error", or no usable key (a positive whole "line", else a string or number "id").
    /// </summary>
    public static string? Key(ReadOnlySpan<byte> line)
    {
        if (line.Length > 0 && line[^1] == (byte)'\r') line = line[..^1];
        if (!Utf8.IsValid(line)) return null;
        try
        {
            var reader = new Utf8JsonReader(line, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
            const int Id = 1, Line = 2, Output = 4, Error = 8;
            int seen = 0, number = 0;
            string? idKey = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                int which = reader.ValueTextEquals("id"u8) ? Id : reader.ValueTextEquals("line"u8) ? Line
                    : reader.ValueTextEquals("output"u8) ? Output : reader.ValueTextEquals("error"u8) ? Error : 0;
                if ((seen & which) != 0) return null;          // a key twice: which one is meant is anyone's guess
                seen |= which;
                reader.Read();
                if (which == Id)
                    idKey = reader.TokenType switch
                    {
                        JsonTokenType.String => "s:" + reader.GetString(),
                        JsonTokenType.Number => "n:" + Encoding.UTF8.GetString(reader.ValueSpan),
                        _ => null,
                    };
                else if (which == Line && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int n) && n > 0)
                    number = n;
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read()) return null;
            if ((seen & (Output | Error)) == 0) return null;
            return number > 0 ? BatchLine.LineKey(number) : idKey;
        }
        catch (JsonException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;       // a string id with a lone surrogate (\ud800) cannot be read as text
        }
    }
}
