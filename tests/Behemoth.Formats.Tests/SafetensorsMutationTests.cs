using System.Text;
using Behemoth.Formats.Errors;
using Behemoth.Formats.Safetensors;
using Behemoth.Tests;
using static Behemoth.Tests.SafetensorsWriter;
using Behemoth.Package;

namespace Behemoth.Formats.Tests;

/// <summary>
/// Throws thousands of seeded corruptions of a valid file at the reader. The reader may accept a mutant
/// (then every tensor it reports must lie inside the data and be readable) or refuse it with the project's
/// own error type; any other exception is a bug.
/// </summary>
public sealed class SafetensorsMutationTests
{
    private static readonly Tensor[] Tensors =
    [
        F32("model.layers.0.mlp.experts.0.w1.weight", [4, 8], i => i),
        new Tensor("model.layers.0.mlp.gate.weight", "BF16", [2, 8], new byte[32]),
        new Tensor("model.norm.weight", "F16", [8], new byte[16]),
        F32("lm_head.weight", [3, 8], i => -i),
    ];

    private static byte[] Mutate(Random rng, byte[] valid)
    {
        var bytes = valid.ToList();
        int headerEnd = 8 + (int)BitConverter.ToUInt64(valid, 0);
        int edits = rng.Next(1, 4);
        for (int e = 0; e < edits; e++)
        {
            int at = rng.Next(0, Math.Max(1, Math.Min(bytes.Count, headerEnd + 4)));
            switch (rng.Next(9))
            {
                case 0: if (at < bytes.Count) bytes[at] = (byte)rng.Next(256); break;                       // random byte
                case 1: if (at < bytes.Count) bytes[at] ^= (byte)(1 << rng.Next(8)); break;                  // bit flip
                case 2: bytes.Insert(at, (byte)"{}[],:\"0123456789-.e"[rng.Next(20)]); break;                // JSON-ish insert
                case 3: if (at < bytes.Count) bytes.RemoveAt(at); break;                                      // delete
                case 4: bytes = bytes.Take(rng.Next(bytes.Count + 1)).ToList(); break; // truncate
                case 5:                                                                                        // digit change
                {
                    var digits = Enumerable.Range(8, Math.Max(0, Math.Min(bytes.Count, headerEnd) - 8)).Where(i => bytes[i] is >= (byte)'0' and <= (byte)'9').ToList();
                    if (digits.Count > 0) bytes[digits[rng.Next(digits.Count)]] = (byte)('0' + rng.Next(10));
                    break;
                }
                case 6:                                                                                        // length prefix
                {
                    ulong n = rng.Next(4) switch { 0 => (ulong)rng.Next(0, 2000), 1 => ulong.MaxValue - (ulong)rng.Next(100), 2 => (ulong)bytes.Count, _ => (ulong)(headerEnd - 8 + rng.Next(-3, 4)) };
                    var prefix = BitConverter.GetBytes(n);
                    for (int i = 0; i < 8 && i < bytes.Count; i++) bytes[i] = prefix[i];
                    break;
                }
                case 7: bytes.AddRange(new byte[rng.Next(1, 16)]); break;                                    // trailing junk
                default:                                                                                       // swap a token
                {
                    string json = Encoding.UTF8.GetString(bytes.Skip(8).Take(Math.Max(0, Math.Min(bytes.Count, headerEnd) - 8)).ToArray());
                    string[] from = ["F32", "BF16", "shape", "data_offsets", "dtype", "[", "]", "\"", "8", ","];
                    string[] to = ["F64", "I8", "shapes", "offsets", "kind", "{", "}", "'", "-8", ", ,", "null", "1e999", "\"x\""];
                    string f = from[rng.Next(from.Length)];
                    int idx = json.IndexOf(f, rng.Next(Math.Max(1, json.Length)) % Math.Max(1, json.Length), StringComparison.Ordinal);
                    if (idx >= 0)
                    {
                        json = json[..idx] + to[rng.Next(to.Length)] + json[(idx + f.Length)..];
                        var rebuilt = bytes.Take(8).Concat(Encoding.UTF8.GetBytes(json)).Concat(bytes.Skip(Math.Min(bytes.Count, headerEnd))).ToList();
                        bytes = rebuilt;
                    }
                    break;
                }
            }
        }
        return bytes.ToArray();
    }

    /// <summary>The reader's two stages, as SafetensorsFile.Open runs them, on bytes in memory.</summary>
    private static void ParseInMemory(byte[] bytes)
    {
        long n = SafetensorsHeader.ReadHeaderLength("mutant.safetensors", bytes.AsSpan(0, Math.Min(8, bytes.Length)), bytes.Length);
        var parsed = SafetensorsHeader.Parse("mutant.safetensors", bytes.AsMemory(8, (int)n), bytes.Length - 8 - n);
        foreach (var t in parsed.Tensors)
        {
            Assert.InRange(t.Offset, 8 + n, bytes.Length);
            Assert.InRange(t.Offset + t.ByteLength, t.Offset, bytes.Length);
            Assert.Equal(t.ByteLength, t.ElementCount * t.DType.SizeInBytes());
        }
    }

    [Fact]
    public void Twenty_thousand_corrupted_headers_fail_only_with_the_projects_error()
    {
        var valid = Build(Tensors);
        var rng = new Random(20261126);
        int refused = 0;
        for (int i = 0; i < 20_000; i++)
        {
            var mutant = Mutate(rng, valid);
            try
            {
                ParseInMemory(mutant);
            }
            catch (BehemothException)
            {
                refused++;
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Assert.Fail($"mutant {i} ({Convert.ToHexString(mutant[..Math.Min(mutant.Length, 400)])}) threw {e}");
            }
        }
        // Most random corruptions must be caught; a few (a changed digit inside a float value, say) are harmless.
        Assert.InRange(refused, 15_000, 20_000);
    }

    [Fact]
    public void Corrupted_files_on_disk_fail_only_with_the_projects_error()
    {
        using var dir = new TempDirectory();
        var valid = Build(Tensors);
        var rng = new Random(7);
        for (int i = 0; i < 1_500; i++)
        {
            var mutant = Mutate(rng, valid);
            string path = dir.File($"m{i % 8}.safetensors");
            File.WriteAllBytes(path, mutant);
            try
            {
                using var file = SafetensorsFile.Open(path);
                foreach (var t in file.Tensors)
                {
                    // Whatever was accepted must be readable, as numbers where the dtype allows.
                    var bytes = file.GetBytes(t);
                    if (t.DType.IsReadableAsFloat())
                        FloatConversion.ToFloat32(bytes, t.DType, new float[t.ElementCount]);
                }
            }
            catch (BehemothException e)
            {
                Assert.Contains(path, e.Message);
            }
        }
    }
}
