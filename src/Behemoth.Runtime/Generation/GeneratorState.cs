using System.Security.Cryptography;
using System.Text;
using Behemoth.Package;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// The on-disk form of a generator's sequence (<see cref="Generator.SaveState(string)"/>): a header naming the
/// package profile it belongs to (a fingerprint of the profile's files' SHA-256), the tokens, the last logits, the KV
/// cache, then a SHA-256 of all of it. Restoring checks the profile before reading the cache and the checksum before
/// anything is used, so an app killed in the background resumes without running the prompt again, and nothing else.
/// </summary>
internal static class GeneratorState
{
    private static readonly byte[] Magic = "BHMSTATE"u8.ToArray();
    private const int Version = 1;

    /// <summary>What ties a state to one profile of one package: its name and its files' SHA-256.</summary>
    public static string Fingerprint(DecoderSession session)
    {
        var info = session.Manifest.Profiles[session.Profile];
        var text = new StringBuilder(session.Profile);
        foreach (var file in info.Files.Prepend(info.Graph).Distinct().Order(StringComparer.Ordinal))
            text.Append('\n').Append(file).Append(' ').Append(session.Manifest.Files[file].Sha256);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    public static void Write(Stream destination, DecoderSession session, IReadOnlyList<int> tokens, int run, ReadOnlySpan<float> logits, bool hasLogits, KvCache? cache)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var writer = new BinaryWriter(new HashingStream(destination, hash, writing: true), Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Magic);
            writer.Write(Version);
            writer.Write(Fingerprint(session));
            writer.Write(session.Profile);
            writer.Write(tokens.Count);
            foreach (int t in tokens) writer.Write(t);
            writer.Write(run);
            writer.Write(hasLogits);
            if (hasLogits) writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits));
            writer.Write(cache is not null);
            cache?.WriteTo(writer);
        }
        destination.Write(hash.GetHashAndReset());
    }

    public sealed record Read(List<int> Tokens, int Run, float[]? Logits, KvCache? Cache);

    public static Read ReadFrom(Stream source, string name, DecoderSession session, int capacity)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        KvCache? cache = null;
        try
        {
            using var reader = new BinaryReader(new HashingStream(source, hash, writing: false), Encoding.UTF8, leaveOpen: true);
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) throw new SessionStateException(name, "not a Behemoth session state");
            int version = reader.ReadInt32();
            if (version != Version) throw new SessionStateException(name, $"state format {version}; this build reads {Version}");
            string fingerprint = reader.ReadString(), profile = reader.ReadString();
            if (fingerprint != Fingerprint(session))
                throw new SessionStateException(name, profile == session.Profile
                    ? $"saved from another package's profile '{profile}' (its files differ from {session.Directory}'s)"
                    : $"saved from profile '{profile}', not the '{session.Profile}' this session runs");
            int count = reader.ReadInt32();
            if (count < 0 || count > session.Shape.ContextLength + 1) throw new SessionStateException(name, $"{count} tokens do not fit the context of {session.Shape.ContextLength}");
            var tokens = new List<int>(count);
            for (int i = 0; i < count; i++)
            {
                int t = reader.ReadInt32();
                if ((uint)t >= (uint)session.Shape.VocabSize) throw new SessionStateException(name, $"token id {t} is outside the vocabulary (damaged)");
                tokens.Add(t);
            }
            int run = reader.ReadInt32();
            if (run < 0 || run > count) throw new SessionStateException(name, "damaged (the tokens run exceed the tokens)");
            float[]? logits = null;
            if (reader.ReadBoolean())
            {
                logits = new float[session.Shape.VocabSize];
                reader.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits.AsSpan()));
            }
            if (reader.ReadBoolean())
            {
                cache = session.NewCache(capacity);
                if (!cache.ReadFrom(reader) || cache.Length != run) throw new SessionStateException(name, "damaged (the KV cache does not match the tokens)");
            }
            else if (run > 0) throw new SessionStateException(name, "damaged (tokens run but no KV cache)");
            var expected = hash.GetHashAndReset();
            var actual = new byte[expected.Length];
            source.ReadExactly(actual);
            if (!actual.AsSpan().SequenceEqual(expected)) throw new SessionStateException(name, "damaged: its SHA-256 does not match its content");
            return new Read(tokens, run, logits, cache);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException)
        {
            cache?.Dispose();
            throw new SessionStateException(name, "damaged: it ends early (" + e.Message + ")");
        }
        catch
        {
            cache?.Dispose();
            throw;
        }
    }

    /// <summary>Passes bytes through to <paramref name="inner"/>, hashing them.</summary>
    private sealed class HashingStream(Stream inner, IncrementalHash hash, bool writing) : Stream
    {
        public override bool CanRead => !writing;
        public override bool CanSeek => false;
        public override bool CanWrite => writing;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            int n = inner.Read(buffer);
            hash.AppendData(buffer[..n]);
            return n;
        }
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            inner.Write(buffer);
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
