using Arbiter.Server.Http2;

namespace Arbiter.Fuzz.Targets;

/// <summary>
/// <see cref="HpackDecoder"/> on header blocks: the input is split into up to four blocks decoded in
/// turn by one decoder (its dynamic table carries over), stopping at the first malformed one.
/// Properties: no exception; the dynamic table stays within its limit; every field handed out lies
/// within what the block could decode to.
/// </summary>
public sealed class HpackTarget : FuzzTarget
{
    private const int TableSizeBytesLimit = 4096;

    public override string Name => "hpack";

    public override IEnumerable<byte[]> BuiltInSeeds() => Seeds.HpackBlocks();

    public override int Run(byte[] input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var decoder = new HpackDecoder(TableSizeBytesLimit);
        var sink = new CountingSink();
        var blocks = input.Length == 0 ? 1 : 1 + (input[0] & 3);
        var blockBytes = Math.Max(1, input.Length / blocks);
        var outcome = 0;
        for (var b = 0; b < blocks; b++)
        {
            var start = Math.Min(input.Length, b * blockBytes);
            var end = b == blocks - 1 ? input.Length : Math.Min(input.Length, start + blockBytes);
            var block = input.AsSpan(start, end - start);
            sink.Reset(block.Length);
            var ok = decoder.TryDecode(block, sink);
            if (decoder.TableSizeBytes > TableSizeBytesLimit)
            {
                throw new FuzzFindingException($"dynamic table at {decoder.TableSizeBytes} B, over its {TableSizeBytesLimit} B limit");
            }

            outcome = (outcome * 3) + (ok ? 1 : 2);
            if (!ok)
            {
                break;
            }
        }

        return (outcome << 4) | Math.Min(15, sink.Fields);
    }

    private sealed class CountingSink : IHpackHeaderSink
    {
        private long _bytesMax;
        private long _bytes;

        public int Fields { get; private set; }

        public void Reset(int blockLength)
        {
            // A field from the table may be as long as the table; a literal at most 8/5 of the block (Huffman).
            _bytesMax = (2L * blockLength) + ((blockLength + 1) * (TableSizeBytesLimit + 64L));
            _bytes = 0;
        }

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
        {
            Fields++;
            _bytes += name.Length + value.Length;
            if (_bytes > _bytesMax)
            {
                throw new FuzzFindingException($"decoded {_bytes} B of fields, more than the block can hold");
            }
        }
    }
}
