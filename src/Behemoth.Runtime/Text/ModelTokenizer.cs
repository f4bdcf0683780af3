using Microsoft.ML.Tokenizers;

namespace Behemoth.Runtime.Text;

/// <summary>
/// The tokenizer shipped with a model directory or package. SentencePiece models (tokenizer.model) load through
/// Microsoft.ML.Tokenizers; special tokens (&lt;s&gt;, &lt;/s&gt;) are added by the caller, not here.
/// </summary>
public static class ModelTokenizer
{
    public static Tokenizer Load(string directory)
    {
        string sentencePiece = Path.Combine(directory, "tokenizer.model");
        if (File.Exists(sentencePiece))
        {
            using var stream = File.OpenRead(sentencePiece);
            return LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        }
        if (File.Exists(Path.Combine(directory, "tokenizer.json")))
            throw new NotSupportedException($"{directory}: tokenizer.json tokenizers are not supported yet; only SentencePiece tokenizer.model");
        throw new FileNotFoundException($"{directory}: no tokenizer.model (SentencePiece) next to the model");
    }
}
