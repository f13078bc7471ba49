using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Arbiter.Server.Http2;

namespace Arbiter.Server.Tests.Http2;

public sealed class Http2AuthorityRewriterTests
{
    private const byte Data = 0x0;
    private const byte Headers = 0x1;
    private const byte Settings = 0x4;
    private const byte WindowUpdate = 0x8;
    private const byte Continuation = 0x9;
    private const byte EndStream = 0x1;
    private const byte EndHeaders = 0x4;
    private const byte Padded = 0x8;
    private const byte Priority = 0x20;

    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(int.MaxValue)]
    public void RewritesSchemeAuthorityAndForwardsOtherFramesUnchanged(int chunkBytes)
    {
        var settings = Frame(Settings, 0, 0, [0x0, 0x3, 0x0, 0x0, 0x0, 0x64]);
        var data = Frame(Data, EndStream, 1, "hello"u8);
        var windowUpdate = Frame(WindowUpdate, 0, 0, [0x0, 0x1, 0x0, 0x0]);

        // :method GET, :scheme http, :path /, :authority (incremental) and user-agent (incremental);
        // the second block refers to both through the client's dynamic table (63, 62).
        byte[] first = [0x82, 0x86, 0x84, 0x41, .. Str("http://127.0.0.1:1234"), 0x7a, .. Str("grpc-go/1.2")];
        byte[] second = [0x82, 0x86, 0x84, 0xbf, 0xbe];
        byte[] input = [.. Preface, .. settings, .. Frame(Headers, EndHeaders, 1, first), .. data, .. Frame(Headers, EndHeaders | EndStream, 3, second), .. windowUpdate];

        using var rewriter = new Http2AuthorityRewriter();
        var output = Run(rewriter, input, chunkBytes);

        Assert.True(rewriter.Rewriting);
        Assert.Equal(Preface, output[..Preface.Length]);
        var frames = ParseFrames(output.AsSpan(Preface.Length));
        Assert.Equal(5, frames.Count);
        Assert.Equal(settings, frames[0].Raw);
        Assert.Equal(data, frames[2].Raw);
        Assert.Equal(windowUpdate, frames[4].Raw);

        // What Kestrel sees: its own decoder, whose table must stay empty.
        var kestrel = new HpackDecoder();
        (string, string, bool)[] expected =
            [(":method", "GET", false), (":scheme", "http", false), (":path", "/", false), (":authority", "127.0.0.1:1234", false), ("user-agent", "grpc-go/1.2", false)];
        Assert.Equal((Headers, EndHeaders, 1), (frames[1].Type, frames[1].Flags, frames[1].StreamId));
        Assert.Equal(expected, HpackDecoderTests.Decode(kestrel, Convert.ToHexString(frames[1].Payload)));
        Assert.Equal((Headers, (byte)(EndHeaders | EndStream), 3), (frames[3].Type, frames[3].Flags, frames[3].StreamId));
        Assert.Equal(expected, HpackDecoderTests.Decode(kestrel, Convert.ToHexString(frames[3].Payload)));
        Assert.Equal(0, kestrel.TableCount);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(int.MaxValue)]
    public void ForwardsEverythingVerbatimWhenNoAuthorityNeedsRewriting(int chunkBytes)
    {
        byte[] block = [0x82, 0x86, 0x84, 0x41, .. Str("127.0.0.1:1234")];
        byte[] input = [.. Preface, .. Frame(Settings, 0, 0, []), .. Frame(Headers, EndHeaders, 1, block), .. Frame(Data, EndStream, 1, new byte[100]), .. Frame(Headers, EndHeaders, 3, [0x82, 0x86, 0x84, 0xbe])];

        using var rewriter = new Http2AuthorityRewriter();
        Assert.Equal(input, Run(rewriter, input, chunkBytes));
        Assert.False(rewriter.Rewriting);
        Assert.False(rewriter.PassingThrough);
    }

    [Fact]
    public void AuthorityAfterARegularHeaderIsLeftForKestrelToReject()
    {
        byte[] block = [0x82, 0x86, 0x84, 0x7a, .. Str("grpc-go/1.2"), 0x41, .. Str("http://127.0.0.1:1234")];
        byte[] input = [.. Preface, .. Frame(Headers, EndHeaders, 1, block), .. Frame(Headers, EndHeaders, 3, [0x82, 0x86, 0x84, 0xbf])];

        using var rewriter = new Http2AuthorityRewriter();
        Assert.Equal(input, Run(rewriter, input, int.MaxValue));
        Assert.False(rewriter.Rewriting);
        Assert.False(rewriter.PassingThrough);
    }

    [Fact]
    public void HandlesPaddingPriorityAndContinuationAndSplitsLargeBlocks()
    {
        var big = new string('x', 20_000);
        using var literal = new PooledByteBuffer(1 << 20);
        HpackLiteralEncoder.WriteLiteral(literal, "x-big"u8, Encoding.ASCII.GetBytes(big), neverIndexed: true);
        byte[] block = [0x83, 0x86, 0x84, 0x01, .. Str("https://127.0.0.1:1234/some/path"), .. literal.WrittenSpan];
        byte[] priority = [0x80, 0x0, 0x0, 0x1, 0xff];

        // HEADERS (padded, priority, END_STREAM) with the first 1000 block bytes, then CONTINUATIONs.
        byte[] headersPayload = [3, .. priority, .. block[..1000], 0, 0, 0];
        byte[] input =
        [
            .. Preface,
            .. Frame(Headers, EndStream | Padded | Priority, 5, headersPayload),
            .. Frame(Continuation, 0, 5, block.AsSpan(1000, 14000)),
            .. Frame(Continuation, EndHeaders, 5, block.AsSpan(15000)),
            .. Frame(Data, EndStream, 7, "z"u8),
        ];

        using var rewriter = new Http2AuthorityRewriter();
        var frames = ParseFrames(Run(rewriter, input, 4096).AsSpan(Preface.Length));

        Assert.Equal(3, frames.Count);
        Assert.Equal((Headers, (byte)(EndStream | Priority), 5), (frames[0].Type, frames[0].Flags, frames[0].StreamId));
        Assert.Equal(16 * 1024, frames[0].Payload.Length);
        Assert.Equal(priority, frames[0].Payload[..5]);
        Assert.Equal((Continuation, EndHeaders, 5), (frames[1].Type, frames[1].Flags, frames[1].StreamId));
        Assert.Equal(Data, frames[2].Type);

        byte[] rewritten = [.. frames[0].Payload[5..], .. frames[1].Payload];
        Assert.Equal(
            [(":method", "POST", false), (":scheme", "http", false), (":path", "/", false), (":authority", "127.0.0.1:1234", false), ("x-big", big, true)],
            HpackDecoderTests.Decode(new HpackDecoder(), Convert.ToHexString(rewritten)));
    }

    [Fact]
    public void ReadsHeaderBlocksSpreadOverManySegments()
    {
        byte[] block = [0x82, 0x86, 0x84, 0x41, .. Str("http://[::1]:2379")];
        byte[] input = [.. Preface, .. Frame(Headers, EndHeaders, 1, block)];
        using var rewriter = new Http2AuthorityRewriter();
        var output = new ArrayBufferWriter<byte>();
        var sequence = OneBytePerSegment(input);

        Assert.Equal(sequence.End, rewriter.Process(sequence, output));
        var frames = ParseFrames(output.WrittenSpan[Preface.Length..]);
        Assert.Equal((":authority", "[::1]:2379", false), HpackDecoderTests.Decode(new HpackDecoder(), Convert.ToHexString(frames[0].Payload))[3]);
    }

    [Theory]
    [InlineData("80")] // HPACK index 0
    [InlineData("be")] // unknown dynamic index
    public void MalformedHeaderBlocksPassThroughForKestrelToReject(string blockHex)
    {
        byte[] input = [.. Preface, .. Frame(Headers, EndHeaders, 1, Convert.FromHexString(blockHex)), .. Frame(Headers, EndHeaders, 3, [0x82, 0x41, .. Str("http://a:1")])];
        using var rewriter = new Http2AuthorityRewriter();
        Assert.Equal(input, Run(rewriter, input, int.MaxValue));
        Assert.True(rewriter.PassingThrough);
    }

    [Fact]
    public void FrameLevelViolationsPassThrough()
    {
        // A DATA frame in the middle of a header block, then a frame over the size limit.
        byte[] interleaved = [.. Preface, .. Frame(Headers, 0, 1, [0x82]), .. Frame(Data, 0, 1, "x"u8), .. Frame(Continuation, EndHeaders, 1, [0x86])];
        using (var rewriter = new Http2AuthorityRewriter())
        {
            Assert.Equal(interleaved, Run(rewriter, interleaved, 3));
        }

        byte[] oversized = [.. Preface, .. Frame(Headers, EndHeaders, 1, new byte[17_000])];
        using (var rewriter = new Http2AuthorityRewriter())
        {
            Assert.Equal(oversized, Run(rewriter, oversized, int.MaxValue));
        }

        var http1 = "GET / HTTP/1.1\r\nHost: http://x\r\n\r\n"u8.ToArray();
        using (var rewriter = new Http2AuthorityRewriter())
        {
            Assert.Equal(http1, Run(rewriter, http1, 5));
            Assert.True(rewriter.PassingThrough);
        }
    }

    [Fact]
    public void OversizedBlockPassesThroughBeforeAnyRewriteAndAbortsAfterOne()
    {
        var chunk = new byte[16 * 1024];
        byte[] huge = [.. Frame(Headers, 0, 3, chunk), .. Frame(Continuation, 0, 3, chunk), .. Frame(Continuation, 0, 3, chunk), .. Frame(Continuation, 0, 3, chunk), .. Frame(Continuation, EndHeaders, 3, chunk)];

        byte[] plain = [.. Preface, .. huge];
        using (var rewriter = new Http2AuthorityRewriter())
        {
            Assert.Equal(plain, Run(rewriter, plain, int.MaxValue));
            Assert.True(rewriter.PassingThrough);
        }

        byte[] afterRewrite = [.. Preface, .. Frame(Headers, EndHeaders, 1, [0x82, 0x41, .. Str("http://a:1")]), .. huge];
        using (var rewriter = new Http2AuthorityRewriter())
        {
            Assert.Throws<InvalidDataException>(() => Run(rewriter, afterRewrite, int.MaxValue));
        }
    }

    [Fact]
    public void IncompleteTailIsForwardedAtEndOfInput()
    {
        byte[] input = [.. Preface, .. Frame(Headers, 0, 1, [0x82]), 0x0, 0x0];
        using var rewriter = new Http2AuthorityRewriter();
        var output = new ArrayBufferWriter<byte>();
        var sequence = new ReadOnlySequence<byte>(input);
        var consumed = rewriter.Process(sequence, output);
        rewriter.FlushRemainder(sequence.Slice(consumed), output);
        Assert.Equal(input, output.WrittenSpan.ToArray());
    }

    internal static byte[] Frame(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), streamId);
        payload.CopyTo(frame.AsSpan(9));
        return frame;
    }

    private static byte[] Str(string text) => [(byte)text.Length, .. Encoding.ASCII.GetBytes(text)];

    // Feeds the input in chunks the way the connection pump does, keeping unconsumed bytes.
    private static byte[] Run(Http2AuthorityRewriter rewriter, byte[] input, int chunkBytes)
    {
        var output = new ArrayBufferWriter<byte>();
        var pending = new List<byte>();
        for (var offset = 0; offset < input.Length; offset += Math.Min(chunkBytes, input.Length - offset))
        {
            pending.AddRange(input.AsSpan(offset, Math.Min(chunkBytes, input.Length - offset)));
            var sequence = new ReadOnlySequence<byte>([.. pending]);
            var consumed = rewriter.Process(sequence, output);
            pending.RemoveRange(0, (int)sequence.Slice(0, consumed).Length);
        }

        Assert.Empty(pending);
        return output.WrittenSpan.ToArray();
    }

    private static List<(byte Type, byte Flags, int StreamId, byte[] Payload, byte[] Raw)> ParseFrames(ReadOnlySpan<byte> bytes)
    {
        var frames = new List<(byte, byte, int, byte[], byte[])>();
        while (!bytes.IsEmpty)
        {
            var length = (bytes[0] << 16) | (bytes[1] << 8) | bytes[2];
            frames.Add((bytes[3], bytes[4], BinaryPrimitives.ReadInt32BigEndian(bytes[5..]), bytes.Slice(9, length).ToArray(), bytes[..(9 + length)].ToArray()));
            bytes = bytes[(9 + length)..];
        }

        return frames;
    }

    private static ReadOnlySequence<byte> OneBytePerSegment(byte[] bytes)
    {
        var first = new Segment(bytes.AsMemory(0, 1), 0);
        var last = first;
        for (var i = 1; i < bytes.Length; i++)
        {
            last = last.Append(bytes.AsMemory(i, 1));
        }

        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
