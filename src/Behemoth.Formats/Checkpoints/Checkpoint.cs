using System.Text.Json;
using Behemoth.Formats.Errors;
using Behemoth.Formats.Safetensors;

namespace Behemoth.Formats.Checkpoints;

/// <summary>
/// A Hugging Face model directory: <c>config.json</c> plus either <c>model.safetensors</c> or shards
/// <c>model-0000N-of-0000M.safetensors</c> listed in <c>model.safetensors.index.json</c>. Shards are
/// memory-mapped; nothing is read from them until a tensor is asked for.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, (SafetensorsFile File, TensorEntry Entry)> _tensors;
    private readonly List<SafetensorsFile> _files;

    private Checkpoint(string directory, List<SafetensorsFile> files, Dictionary<string, (SafetensorsFile, TensorEntry)> tensors)
    {
        Directory = directory;
        _files = files;
        _tensors = tensors;
    }

    public string Directory { get; }

    public string ConfigPath => System.IO.Path.Combine(Directory, "config.json");

    public IReadOnlyList<SafetensorsFile> Files => _files;

    public IEnumerable<string> TensorNames => _tensors.Keys;

    /// <summary>Tensor bytes read from all shards since opening.</summary>
    public long BytesRead => _files.Sum(f => f.BytesRead);

    /// <summary>Total size of the weight files (what a full load would read).</summary>
    public long WeightFileBytes => _files.Sum(f => f.Length);

    public static Checkpoint Open(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new CheckpointFormatException(directory, "model directory does not exist");
        string single = System.IO.Path.Combine(directory, SingleFileName);
        string index = System.IO.Path.Combine(directory, IndexFileName);
        if (File.Exists(single))
        {
            var file = SafetensorsFile.Open(single);
            var map = file.Tensors.ToDictionary(t => t.Name, t => (file, t), StringComparer.Ordinal);
            return new Checkpoint(directory, [file], map);
        }
        if (File.Exists(index))
            return OpenSharded(directory, index);
        throw new CheckpointFormatException(directory, $"no weights: expected {SingleFileName} or {IndexFileName} with its shards");
    }

    private static Checkpoint OpenSharded(string directory, string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var files = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            var tensors = new Dictionary<string, (SafetensorsFile, TensorEntry)>(StringComparer.Ordinal);
            foreach (var (tensor, fileName) in weightMap)
            {
                if (!files.TryGetValue(fileName, out var shard))
                {
                    string shardPath = System.IO.Path.Combine(directory, fileName);
                    if (!File.Exists(shardPath))
                        throw new CheckpointFormatException(indexPath, $"lists shard '{fileName}', which is not in {directory}", tensor);
                    files[fileName] = shard = SafetensorsFile.Open(shardPath);
                }
                if (!shard.Contains(tensor))
                    throw new CheckpointFormatException(shard.Path, $"{IndexFileName} places this tensor here but the shard does not hold it", tensor);
                tensors[tensor] = (shard, shard.GetEntry(tensor));
            }
            return new Checkpoint(directory, files.Values.ToList(), tensors);
        }
        catch
        {
            foreach (var f in files.Values) f.Dispose();
            throw;
        }
    }

    private static List<KeyValuePair<string, string>> ReadWeightMap(string indexPath)
    {
        byte[] bytes;
        try
        {
            bytes = Behemoth.Package.PackageFile.ReadInput(indexPath);
        }
        catch (Behemoth.Package.PackageFormatException e)
        {
            throw new CheckpointFormatException(indexPath, e.Message[(indexPath.Length + 2)..]);
        }
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new CheckpointFormatException(indexPath, "not valid UTF-8 text");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(indexPath, $"not valid JSON ({e.Message})", inner: e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(indexPath, "expected an object with a 'weight_map' object mapping tensor names to shard files");
            if (!Config.JsonStrings.AllDecodable(map))
                throw new CheckpointFormatException(indexPath, "weight_map holds a string that is not valid Unicode (a lone surrogate escape)");
            var result = new List<KeyValuePair<string, string>>();
            foreach (var item in map.EnumerateObject())
            {
                if (item.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointFormatException(indexPath, $"weight_map value must be a file name, found {item.Value.ValueKind}", item.Name);
                string file = item.Value.GetString()!;
                // Shards live next to the index; a path elsewhere is a corrupt or hostile index.
                if (file.Length == 0 || file != System.IO.Path.GetFileName(file) || file is "." or "..")
                    throw new CheckpointFormatException(indexPath, $"weight_map names '{file}', which is not a plain file name in the model directory", item.Name);
                result.Add(new(item.Name, file));
            }
            return result;
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The tensor named <paramref name="name"/>; a missing tensor is an error naming the closest names present.</summary>
    public CheckpointTensor Get(string name)
    {
        if (_tensors.TryGetValue(name, out var found))
            return new CheckpointTensor(found.File, found.Entry);
        string where = _files.Count == 1 ? _files[0].Path : System.IO.Path.Combine(Directory, IndexFileName);
        var near = NameSuggestions.Closest(name, _tensors.Keys, 2);
        string hint = near.Count == 0 ? "" : $"; closest present: {string.Join(", ", near.Select(n => $"'{n}'"))}";
        throw new CheckpointFormatException(where, $"missing (the checkpoint holds {_tensors.Count} tensors{hint})", name);
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}

/// <summary>One tensor of a checkpoint: its header entry and the mapped file holding it.</summary>
public readonly record struct CheckpointTensor(SafetensorsFile File, TensorEntry Entry)
{
    public string Name => Entry.Name;

    public long[] Shape => Entry.Shape;

    /// <summary>Checks the shape and that the dtype is floating point, with an error naming file, tensor, expected and actual.</summary>
    public CheckpointTensor Expect(params long[] shape)
    {
        if (!Shape.AsSpan().SequenceEqual(shape))
            throw new CheckpointFormatException(File.Path, $"expected shape {TensorEntry.Format(shape)} from config.json, found {Entry.ShapeText}", Name);
        if (!Entry.DType.IsReadableAsFloat())
            throw new CheckpointFormatException(File.Path, $"dtype {Entry.DType.Name()} is not supported (supported: {SafetensorsDTypes.FloatingNames})", Name);
        return this;
    }

    /// <summary>Reads elements [<paramref name="start"/>, start + destination.Length) as float32.</summary>
    public void ReadFloat32(Span<float> destination, long start = 0)
    {
        if (!Entry.DType.IsReadableAsFloat())
            throw new CheckpointFormatException(File.Path, $"dtype {Entry.DType.Name()} is not supported (supported: {SafetensorsDTypes.FloatingNames})", Name);
        // Positioned reads in chunks (not the mapping): converting never maps the file into the process.
        const int ChunkElements = 1 << 22;
        int size = Entry.DType.SizeInBytes();
        byte[]? buffer = Entry.DType == SafetensorsDType.F32 ? null : System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Min(destination.Length, ChunkElements) * size);
        try
        {
            for (int done = 0; done < destination.Length; done += ChunkElements)
            {
                var part = destination.Slice(done, Math.Min(ChunkElements, destination.Length - done));
                long offset = (start + done) * size;
                if (buffer is null)
                {
                    File.CopyTo(Entry, offset, System.Runtime.InteropServices.MemoryMarshal.AsBytes(part));
                    continue;
                }
                var raw = buffer.AsSpan(0, part.Length * size);
                File.CopyTo(Entry, offset, raw);
                FloatConversion.ToFloat32(raw, Entry.DType, part);
            }
        }
        finally
        {
            if (buffer is not null) System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public float[] ReadFloat32()
    {
        var result = new float[Entry.ElementCount];
        ReadFloat32(result);
        return result;
    }
}
