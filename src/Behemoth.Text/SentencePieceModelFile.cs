using System.Text;

namespace Behemoth.Text;

/// <summary>
/// Reads the pieces that are not text out of a SentencePiece <c>tokenizer.model</c>: the unknown token, control tokens
/// (&lt;s&gt;, &lt;/s&gt;, Mistral v3's [INST], [/INST], …) and user-defined pieces.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers encodes "&lt;s&gt;" in text as characters unless it is told the special tokens, while the
/// chat templates write them as text, so the loader passes these pieces as special tokens. The protobuf is
/// <c>ModelProto { repeated SentencePiece pieces = 1; … }</c> and <c>SentencePiece { string piece = 1; float score = 2;
/// Type type = 3; }</c>; the type defaults to NORMAL (1) when absent. Only these fields are read; the rest are skipped.
/// </remarks>
internal static class SentencePieceModelFile
{
    private const int Unknown = 2, Control = 3, UserDefined = 4;

    /// <summary>Special pieces and their ids (the piece's position in the model).</summary>
    public static Dictionary<string, int> ReadSpecialPieces(string path) => ReadSpecialPieces(path, Behemoth.Package.PackageFile.ReadInput(path));

    /// <summary>From the file's bytes (<paramref name="path"/> names it in errors).</summary>
    public static Dictionary<string, int> ReadSpecialPieces(string path, byte[] bytes)
    {
        var special = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            int pos = 0, id = 0;
            while (pos < bytes.Length)
            {
                ulong key = ReadVarint(bytes, ref pos);
                int field = (int)(key >> 3), wire = (int)(key & 7);
                if (field == 1 && wire == 2)
                {
                    int length = checked((int)ReadVarint(bytes, ref pos));
                    var (piece, type) = ReadPiece(bytes.AsSpan(pos, length));
                    if (type is Unknown or Control or UserDefined) special[piece] = id;
                    id++;
                    pos += length;
                }
                else if (id > 0) break;     // pieces come first; trainer and normalizer specs are not needed
                else Skip(bytes, ref pos, wire);
            }
            if (id == 0) throw new InvalidDataException("no pieces (field 1) found");
        }
        catch (Exception e) when (TokenizerFormatException.IsParseFailure(e))
        {
            throw new TokenizerFormatException(path, "not a SentencePiece model (expected a ModelProto protobuf with pieces): " + e.Message, e);
        }
        return special;
    }

    private static (string Piece, int Type) ReadPiece(ReadOnlySpan<byte> message)
    {
        string piece = "";
        int type = 1, pos = 0;
        var bytes = message.ToArray();
        while (pos < bytes.Length)
        {
            ulong key = ReadVarint(bytes, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            if (field == 1 && wire == 2)
            {
                int length = checked((int)ReadVarint(bytes, ref pos));
                piece = Encoding.UTF8.GetString(bytes, pos, length);
                pos += length;
            }
            else if (field == 3 && wire == 0) type = (int)ReadVarint(bytes, ref pos);
            else Skip(bytes, ref pos, wire);
        }
        return (piece, type);
    }

    private static ulong ReadVarint(byte[] bytes, ref int pos)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = bytes[pos++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException("varint longer than 10 bytes");
    }

    private static void Skip(byte[] bytes, ref int pos, int wire)
    {
        switch (wire)
        {
            case 0: ReadVarint(bytes, ref pos); break;
            case 1: pos += 8; break;
            case 2: pos += checked((int)ReadVarint(bytes, ref pos)); break;
            case 5: pos += 4; break;
            default: throw new InvalidDataException($"unexpected protobuf wire type {wire} at byte {pos}");
        }
        if (pos > bytes.Length) throw new InvalidDataException("truncated protobuf field");
    }
}
