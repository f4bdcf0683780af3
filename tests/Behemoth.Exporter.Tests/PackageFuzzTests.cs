using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Export;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Seeded fuzzing of package loading: manifest fields, graph bytes and tokenizer bytes mutated at random (with the
/// manifest's hashes recomputed, as a hostile package would), thousands of cases. Loading may succeed or fail, but
/// only with the typed errors a caller handles (<see cref="BehemothException"/>): never a crash, a hang or an
/// untyped exception.
/// </summary>
public sealed class PackageFuzzTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _package;
    private readonly byte[] _manifest;

    public PackageFuzzTests()
    {
        // the Llama 4 golden shape (chunked and full attention layers, a shared expert), plus behemoth-nano's tokenizer
        _package = _temp.File("pkg");
        PackageExporter.Export(TestPaths.Golden("llama4"), _package, new ExportOptions { Quant = WeightType.Int4, Moe = MoeForm.Decomposed }, overwrite: false);
        var tokenizer = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano", "tokenizer.model"));
        File.WriteAllBytes(Path.Combine(_package, "tokenizer.model"), tokenizer);
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(_package, PackageManifest.FileName)))!;
        root["files"]!["tokenizer.model"] = new JsonObject { ["bytes"] = tokenizer.Length, ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(tokenizer)) };
        root["tokenizer"] = new JsonObject { ["kind"] = "sentencepiece", ["files"] = new JsonArray("tokenizer.model") };
        _manifest = System.Text.Encoding.UTF8.GetBytes(root.ToJsonString());
        File.WriteAllBytes(Path.Combine(_package, PackageManifest.FileName), _manifest);
    }

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Mutated_manifests_graphs_and_tokenizers_give_only_typed_errors()
    {
        var random = new Random(20261201);
        int opened = 0, refused = 0;
        for (int i = 0; i < 2500; i++)
        {
            string dir = _temp.File($"case-{i}");
            Directory.CreateDirectory(dir);
            foreach (var f in Directory.GetFiles(_package)) File.CreateSymbolicLink(Path.Combine(dir, Path.GetFileName(f)), f);
            var manifest = JsonNode.Parse(_manifest)!;
            int kind = random.Next(10);
            string what;
            if (kind < 6) what = "manifest: " + MutateJson(manifest, random);
            else
            {
                string file = kind < 9 ? "full.onnx" : "tokenizer.model";
                var bytes = File.ReadAllBytes(Path.Combine(_package, file));
                what = $"{file}: " + MutateBytes(ref bytes, random);
                File.Delete(Path.Combine(dir, file));
                File.WriteAllBytes(Path.Combine(dir, file), bytes);
                // a hostile package recomputes the hashes, so the parsers behind the checks are reached
                manifest["files"]![file] = new JsonObject { ["bytes"] = bytes.Length, ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(bytes)) };
            }
            File.Delete(Path.Combine(dir, PackageManifest.FileName));
            File.WriteAllText(Path.Combine(dir, PackageManifest.FileName), manifest.ToJsonString());
            try
            {
                // every case reads the manifest, verifies a profile and loads the tokenizer; one in ten builds the session
                var read = PackageReader.ReadManifest(dir);
                using (VerifiedProfile.Load(dir, read, read.Profiles.Keys.First())) { }
                Runtime.Tokenizer.Load(dir);
                if (i % 10 == 0) using (DecoderSession.Open(dir, read.Profiles.Keys.First(), ExecutionProvider.Cpu, 1)) { }
                opened++;
            }
            catch (BehemothException)
            {
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {i} ({what}): {e}");
            }
            Directory.Delete(dir, recursive: true);
        }
        Assert.True(refused > 1000 && opened > 100, $"{refused} refused, {opened} opened: the mutations reach both outcomes");
    }

    // one mutation at a random place of the manifest's JSON tree
    private static string MutateJson(JsonNode root, Random random)
    {
        var containers = new List<JsonNode>();
        void Walk(JsonNode? n)
        {
            if (n is JsonObject o) { containers.Add(o); foreach (var (_, v) in o) Walk(v); }
            else if (n is JsonArray a) { containers.Add(a); foreach (var v in a) Walk(v); }
        }
        Walk(root);
        var target = containers[random.Next(containers.Count)];
        JsonNode? Value() => random.Next(9) switch
        {
            0 => null,
            1 => JsonValue.Create(long.MaxValue),
            2 => JsonValue.Create(-1),
            3 => JsonValue.Create(0),
            4 => JsonValue.Create(random.Next(1, 100_000_000)),
            5 => JsonValue.Create("../../etc/passwd"),
            6 => new JsonArray(),
            7 => new JsonObject(),
            _ => JsonValue.Create(1e300),
        };
        if (target is JsonObject obj && obj.Count > 0)
        {
            string key = obj.ElementAt(random.Next(obj.Count)).Key;
            if (random.Next(4) == 0) { obj.Remove(key); return $"removed '{key}'"; }
            obj[key] = Value();
            return $"'{key}' = {obj[key]?.ToJsonString() ?? "null"}";
        }
        if (target is JsonArray arr && arr.Count > 0)
        {
            int at = random.Next(arr.Count);
            if (random.Next(3) == 0) { arr.RemoveAt(at); return $"array item {at} removed"; }
            arr[at] = Value();
            return $"array item {at} = {arr[at]?.ToJsonString() ?? "null"}";
        }
        return "nothing";
    }

    private static string MutateBytes(ref byte[] bytes, Random random)
    {
        switch (random.Next(4))
        {
            case 0:
                int cut = random.Next(bytes.Length);
                bytes = bytes[..cut];
                return $"cut at {cut}";
            case 1:
                int n = random.Next(1, 16);
                for (int k = 0; k < n; k++) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                return $"{n} random bytes";
            case 2:
                int at = random.Next(bytes.Length - 8);
                random.NextBytes(bytes.AsSpan(at, Math.Min(64, bytes.Length - at)));
                return $"garbage at {at}";
            default:
                // a varint-sized field blown up: lengths and offsets that point far outside
                int p = random.Next(bytes.Length);
                bytes[p] = 0xFF;
                if (p + 1 < bytes.Length) bytes[p + 1] = 0xFF;
                return $"0xFFFF at {p}";
        }
    }
}
