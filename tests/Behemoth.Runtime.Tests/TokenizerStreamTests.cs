using System.Text;
using Behemoth.Text;
using static Behemoth.Runtime.Tests.RealTokenizers;

namespace Behemoth.Runtime.Tests;

/// <summary>
/// Streaming detokenization against decoding the whole output at once: for every real tokenizer and 200 texts in five
/// languages, the pieces a stream returns one id at a time add up to the full decode (after the prompt's last token).
/// </summary>
public class TokenizerStreamTests
{
    [Theory]
    [MemberData(nameof(AllFiles))]
    public void Pieces_add_up_to_the_whole_decode(string file)
    {
        var loaded = Get(file);
        var tokenizer = new Tokenizer(loaded);
        int previous = tokenizer.Encode("Question:")[^1];
        foreach (string text in Multilingual)
        {
            var ids = tokenizer.Encode(" " + text);
            var stream = tokenizer.CreateStream(previous);
            var streamed = new StringBuilder();
            foreach (int id in ids)
            {
                string piece = stream.Decode(id);
                Assert.DoesNotContain('\uFFFD', piece);      // never half a character
                streamed.Append(piece);
            }
            streamed.Append(stream.Flush());
            string whole = tokenizer.Decode([previous, .. ids])[tokenizer.Decode([previous]).Length..];
            Assert.Equal(whole, streamed.ToString());
        }
    }

    [Fact]
    public void A_character_split_over_byte_pieces_comes_out_whole_once_complete()
    {
        // Llama 2's SentencePiece has byte fallback: an emoji is four <0x..> pieces
        var tokenizer = new Tokenizer(Get(Llama2));
        var ids = tokenizer.Encode("ok 🦙");
        var stream = tokenizer.CreateStream(tokenizer.BosTokenId);
        var pieces = ids.Select(stream.Decode).ToList();
        Assert.True(pieces.Count(p => p.Length == 0) >= 3, "the byte pieces before the last are held back");
        Assert.Equal("ok 🦙", string.Concat(pieces) + stream.Flush());
    }

    [Fact]
    public void Stray_bytes_that_never_complete_a_character_are_given_out_and_do_not_grow_the_window()
    {
        // A sampled model can emit continuation bytes with no lead byte: no character ever completes, so holding them
        // back until one does would re-decode a window that grows with the output (quadratic time).
        var tokenizer = new Tokenizer(Get(Llama2));
        int stray = tokenizer.Encode("🦙")[^1];          // the emoji's last byte piece alone is not a character
        long decoded = 0;      // ids decoded, all calls together
        var stream = new TokenizerStream(ids => { var list = ids.ToList(); decoded += list.Count; return tokenizer.Decode(list); }, tokenizer.BosTokenId);
        var text = new StringBuilder();
        for (int i = 0; i < 400; i++) text.Append(stream.Decode(stray));
        text.Append(stream.Flush());
        Assert.True(text.Length >= 390, $"the stray bytes come out (as U+FFFD): {text.Length} chars");
        Assert.All(text.ToString(), c => Assert.Equal('\uFFFD', c));
        Assert.InRange(decoded, 1, 40 * 400);     // short windows per id, not every id held so far (80,000 here)
    }

    public static TheoryData<string> AllFiles() => new(All);
}
