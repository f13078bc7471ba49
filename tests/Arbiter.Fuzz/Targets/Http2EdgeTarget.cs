using System.Buffers;
using Arbiter.Server.Http2;

namespace Arbiter.Fuzz.Targets;

/// <summary>
/// The client-to-server bytes of one HTTP/2 connection through <see cref="Http2AuthorityRewriter"/>
/// (the hand-written HPACK decoding and header re-encoding), fed whole and in chunks as the socket
/// delivers them. Properties: nothing but the documented <see cref="InvalidDataException"/> escapes;
/// a connection with no rewrite comes out byte for byte as it went in; chunking does not change
/// the output; the output stays within a bound of the input.
/// </summary>
public sealed class Http2EdgeTarget : FuzzTarget
{
    public override string Name => "http2-edge";

    public override int InputBytesMax => 32 * 1024;

    public override IEnumerable<byte[]> BuiltInSeeds() => Seeds.Http2Connections();

    public override int Run(byte[] input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var (wholeOutput, wholeThrew, rewriting, passing) = Feed(input, chunkSeed: 0);
        var (chunkedOutput, chunkedThrew, _, _) = Feed(input, chunkSeed: (input.Length * 31) + (input.Length > 30 ? input[30] : 7));
        if (wholeThrew != chunkedThrew || (!wholeThrew && !wholeOutput.AsSpan().SequenceEqual(chunkedOutput)))
        {
            throw new FuzzFindingException($"chunking changed the result: whole {(wholeThrew ? "threw" : $"{wholeOutput.Length} B")}, chunked {(chunkedThrew ? "threw" : $"{chunkedOutput.Length} B")}");
        }

        if (!wholeThrew && !rewriting && !wholeOutput.AsSpan().SequenceEqual(input))
        {
            throw new FuzzFindingException($"no block was rewritten, yet the output ({wholeOutput.Length} B) differs from the input ({input.Length} B)");
        }

        if (wholeOutput.Length > (4L * input.Length) + 1024)
        {
            throw new FuzzFindingException($"output of {wholeOutput.Length} B for an input of {input.Length} B");
        }

        return (wholeThrew ? 1 : 0) | (rewriting ? 2 : 0) | (passing ? 4 : 0) | (Math.Min(31, System.Numerics.BitOperations.Log2((uint)wholeOutput.Length + 1)) << 3);
    }

    // Feeds the bytes as the middleware's pump does: what Process leaves is offered again with more.
    // The unconsumed bytes are always input[start..offset], so nothing is copied on the way in.
    private static (byte[] Output, bool Threw, bool Rewriting, bool PassingThrough) Feed(byte[] input, int chunkSeed)
    {
        using var rewriter = new Http2AuthorityRewriter();
        var output = new ArrayBufferWriter<byte>(input.Length + 256);
        var start = 0;
        var offset = 0;
        var state = (uint)chunkSeed | 1;
        try
        {
            while (offset < input.Length)
            {
                int chunk;
                if (chunkSeed == 0)
                {
                    chunk = input.Length;
                }
                else
                {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    chunk = 1 + (int)(state % 64);
                }

                offset += Math.Min(chunk, input.Length - offset);
                var buffer = new ReadOnlySequence<byte>(input, start, offset - start);
                var consumed = rewriter.Process(buffer, output);
                start += (int)buffer.Slice(0, consumed).Length;
            }

            rewriter.FlushRemainder(new ReadOnlySequence<byte>(input, start, input.Length - start), output);
            return (output.WrittenSpan.ToArray(), false, rewriter.Rewriting, rewriter.PassingThrough);
        }
        catch (InvalidDataException)
        {
            // Documented: after a rewrite, a block that cannot be re-encoded closes the connection.
            return ([], true, rewriter.Rewriting, rewriter.PassingThrough);
        }
    }
}
