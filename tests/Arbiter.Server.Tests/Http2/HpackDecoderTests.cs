using System.Text;
using Arbiter.Server.Http2;

namespace Arbiter.Server.Tests.Http2;

/// <summary>RFC 7541 Appendix C examples, decoded block after block on one decoder.</summary>
public sealed class HpackDecoderTests
{
    private const string Date21 = "Mon, 21 Oct 2013 20:13:21 GMT";
    private const string Date22 = "Mon, 21 Oct 2013 20:13:22 GMT";
    private const string Cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

    [Fact]
    public void C2_1_LiteralWithIndexingAddsToTable()
    {
        var decoder = new HpackDecoder();
        Assert.Equal([("custom-key", "custom-header", false)], Decode(decoder, "400a637573746f6d2d6b65790d637573746f6d2d686561646572"));
        Assert.Equal(1, decoder.TableCount);
        Assert.Equal(55, decoder.TableSizeBytes);
    }

    [Fact]
    public void C2_2_LiteralWithoutIndexingLeavesTableEmpty()
    {
        var decoder = new HpackDecoder();
        Assert.Equal([(":path", "/sample/path", false)], Decode(decoder, "040c2f73616d706c652f70617468"));
        Assert.Equal(0, decoder.TableCount);
    }

    [Fact]
    public void C2_3_NeverIndexedIsReported()
    {
        var decoder = new HpackDecoder();
        Assert.Equal([("password", "secret", true)], Decode(decoder, "100870617373776f726406736563726574"));
        Assert.Equal(0, decoder.TableCount);
    }

    [Fact]
    public void C2_4_IndexedFromStaticTable()
    {
        Assert.Equal([(":method", "GET", false)], Decode(new HpackDecoder(), "82"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void C3_C4_RequestsShareTheDynamicTable(bool huffman)
    {
        var decoder = new HpackDecoder();
        var blocks = huffman
            ? new[] { "828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf", "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf" }
            : ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865", "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"];

        Assert.Equal(
            [(":method", "GET", false), (":scheme", "http", false), (":path", "/", false), (":authority", "www.example.com", false)],
            Decode(decoder, blocks[0]));
        Assert.Equal((1, 57), (decoder.TableCount, decoder.TableSizeBytes));

        Assert.Equal(
            [(":method", "GET", false), (":scheme", "http", false), (":path", "/", false), (":authority", "www.example.com", false), ("cache-control", "no-cache", false)],
            Decode(decoder, blocks[1]));
        Assert.Equal((2, 110), (decoder.TableCount, decoder.TableSizeBytes));

        Assert.Equal(
            [(":method", "GET", false), (":scheme", "https", false), (":path", "/index.html", false), (":authority", "www.example.com", false), ("custom-key", "custom-value", false)],
            Decode(decoder, blocks[2]));
        Assert.Equal((3, 164), (decoder.TableCount, decoder.TableSizeBytes));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void C5_C6_ResponsesEvictFromASmallTable(bool huffman)
    {
        var decoder = new HpackDecoder(tableSizeBytesLimit: 256);
        var blocks = huffman
            ? new[]
            {
                "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
                "4883640effc1c0bf",
                "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
            }
            : [
                "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
                "4803333037c1c0bf",
                "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
            ];

        Assert.Equal(
            [(":status", "302", false), ("cache-control", "private", false), ("date", Date21, false), ("location", "https://www.example.com", false)],
            Decode(decoder, blocks[0]));
        Assert.Equal((4, 222), (decoder.TableCount, decoder.TableSizeBytes));

        Assert.Equal(
            [(":status", "307", false), ("cache-control", "private", false), ("date", Date21, false), ("location", "https://www.example.com", false)],
            Decode(decoder, blocks[1]));
        Assert.Equal((4, 222), (decoder.TableCount, decoder.TableSizeBytes));

        Assert.Equal(
            [(":status", "200", false), ("cache-control", "private", false), ("date", Date22, false), ("location", "https://www.example.com", false), ("content-encoding", "gzip", false), ("set-cookie", Cookie, false)],
            Decode(decoder, blocks[2]));
        Assert.Equal((3, 215), (decoder.TableCount, decoder.TableSizeBytes));
    }

    [Fact]
    public void TableSizeUpdateEvictsAndIsBoundedBySettings()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, "400a637573746f6d2d6b65790d637573746f6d2d686561646572");
        Assert.Equal(1, decoder.TableCount);

        // 0x20: size update to 0 empties the table; then index 62 no longer exists.
        Assert.Equal([(":method", "GET", false)], Decode(decoder, "2082"));
        Assert.Equal(0, decoder.TableCount);
        Assert.False(decoder.TryDecode(Convert.FromHexString("be"), new Collector()));

        // 4097 > the 4096 limit: 0x3f + varint(4097 - 31).
        Assert.False(new HpackDecoder().TryDecode(Convert.FromHexString("3fe21f"), new Collector()));

        // A size update after a field is an error (RFC 7541 4.2).
        Assert.False(new HpackDecoder().TryDecode(Convert.FromHexString("8220"), new Collector()));
    }

    [Theory]
    [InlineData("80")] // index 0
    [InlineData("c0")] // index 64: empty dynamic table
    [InlineData("4005")] // literal name longer than the block
    [InlineData("0f")] // truncated integer
    [InlineData("ffffffffff0f")] // integer overflow
    [InlineData("0081ff")] // Huffman padding of 8 bits
    [InlineData("008106")] // Huffman "0" then padding 110, not all ones
    [InlineData("0084ffffffff")] // EOS (30 ones) inside a Huffman string
    public void MalformedBlocksFail(string hex)
    {
        Assert.False(new HpackDecoder().TryDecode(Convert.FromHexString(hex), new Collector()));
    }

    [Fact]
    public void HuffmanDecodesEveryByteValue()
    {
        // Encode all 256 byte values with the Appendix B codes, then decode them back.
        var bits = new List<bool>();
        for (var symbol = 0; symbol < 256; symbol++)
        {
            var (code, lengthBits) = HpackHuffman.GetCode(symbol);
            for (var i = lengthBits - 1; i >= 0; i--)
            {
                bits.Add(((code >> i) & 1) == 1);
            }
        }

        while (bits.Count % 8 != 0)
        {
            bits.Add(true);
        }

        var encoded = new byte[bits.Count / 8];
        for (var i = 0; i < bits.Count; i++)
        {
            if (bits[i])
            {
                encoded[i / 8] |= (byte)(0x80 >> (i % 8));
            }
        }

        var decoded = new byte[HpackHuffman.MaxDecodedLengthBytes(encoded.Length)];
        Assert.True(HpackHuffman.TryDecode(encoded, decoded, out var written));
        Assert.Equal(Enumerable.Range(0, 256).Select(i => (byte)i), decoded.Take(written));
    }

    internal static List<(string Name, string Value, bool NeverIndexed)> Decode(HpackDecoder decoder, string hex)
    {
        var collector = new Collector();
        Assert.True(decoder.TryDecode(Convert.FromHexString(hex), collector), $"block {hex} failed to decode");
        return collector.Headers;
    }

    internal sealed class Collector : IHpackHeaderSink
    {
        public List<(string Name, string Value, bool NeverIndexed)> Headers { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed) =>
            Headers.Add((Encoding.ASCII.GetString(name), Encoding.ASCII.GetString(value), neverIndexed));
    }
}
