using System.Buffers;

namespace Arbiter.Server.Http2;

/// <summary>Receives the header fields of a block, in order, as <see cref="HpackDecoder"/> decodes them.</summary>
internal interface IHpackHeaderSink
{
    /// <summary>One header field; the spans are valid only during the call.</summary>
    void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed);
}

/// <summary>
/// Stateful HPACK decoder (RFC 7541) for one direction of one connection: static table, the
/// peer encoder's dynamic table with its size updates, integers and (Huffman) strings.
/// </summary>
internal sealed class HpackDecoder
{
    // RFC 7541 4.1: each entry costs its name and value lengths plus 32.
    private const int EntryOverheadBytes = 32;

    // Newest entry last, so dynamic index 1 is the last element.
    private readonly List<(byte[] Name, byte[] Value)> _entries = [];
    private readonly int _tableSizeBytesLimit;
    private int _tableSizeBytesMax;
    private int _tableSizeBytes;

    /// <summary>Creates a decoder whose table may grow to <paramref name="tableSizeBytesLimit"/>, the SETTINGS_HEADER_TABLE_SIZE the receiver advertised.</summary>
    public HpackDecoder(int tableSizeBytesLimit = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tableSizeBytesLimit);
        _tableSizeBytesLimit = tableSizeBytesLimit;
        _tableSizeBytesMax = tableSizeBytesLimit;
    }

    /// <summary>Current dynamic table size as RFC 7541 4.1 counts it.</summary>
    public int TableSizeBytes => _tableSizeBytes;

    /// <summary>Number of dynamic table entries.</summary>
    public int TableCount => _entries.Count;

    /// <summary>
    /// Decodes a complete header block, calling <paramref name="sink"/> for each field. Returns
    /// false on malformed input; the table may then be partly updated, so the caller should
    /// stop trusting this decoder (as an HTTP/2 peer treats it as a connection error).
    /// </summary>
    public bool TryDecode(ReadOnlySpan<byte> block, IHpackHeaderSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);

        // Name and value Huffman output both come from this block, so this bounds them together.
        var scratch = ArrayPool<byte>.Shared.Rent(HpackHuffman.MaxDecodedLengthBytes(block.Length));
        try
        {
            return TryDecodeCore(block, sink, scratch);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private bool TryDecodeCore(ReadOnlySpan<byte> block, IHpackHeaderSink sink, byte[] scratch)
    {
        var position = 0;
        var sawField = false;
        while (position < block.Length)
        {
            var first = block[position];
            ReadOnlySpan<byte> name;
            ReadOnlySpan<byte> value;
            var scratchUsed = 0;
            if ((first & 0x80) != 0)
            {
                // 6.1 Indexed Header Field.
                if (!TryReadInteger(block, ref position, 7, out var index) || !TryGetEntry(index, out var entry))
                {
                    return false;
                }

                sawField = true;
                sink.OnHeader(entry.Name, entry.Value, neverIndexed: false);
                continue;
            }

            if ((first & 0xE0) == 0x20)
            {
                // 6.3 Dynamic Table Size Update: only at the start of a block (4.2).
                if (sawField || !TryReadInteger(block, ref position, 5, out var sizeBytes) || sizeBytes > _tableSizeBytesLimit)
                {
                    return false;
                }

                _tableSizeBytesMax = sizeBytes;
                Evict(0);
                continue;
            }

            // 6.2.1 with incremental indexing (01), 6.2.2 without (0000), 6.2.3 never indexed (0001).
            var incremental = (first & 0xC0) == 0x40;
            var neverIndexed = (first & 0xF0) == 0x10;
            if (!TryReadInteger(block, ref position, incremental ? 6 : 4, out var nameIndex))
            {
                return false;
            }

            if (nameIndex == 0)
            {
                if (!TryReadString(block, ref position, scratch, ref scratchUsed, out name))
                {
                    return false;
                }
            }
            else if (TryGetEntry(nameIndex, out var entry))
            {
                name = entry.Name;
            }
            else
            {
                return false;
            }

            if (!TryReadString(block, ref position, scratch, ref scratchUsed, out value))
            {
                return false;
            }

            sawField = true;
            sink.OnHeader(name, value, neverIndexed);
            if (incremental)
            {
                Add(name, value);
            }
        }

        return true;
    }

    /// <summary>Reads an HPACK integer (5.1) with an N-bit prefix; caps at <see cref="int.MaxValue"/>.</summary>
    internal static bool TryReadInteger(ReadOnlySpan<byte> source, ref int position, int prefixBits, out int value)
    {
        value = 0;
        if (position >= source.Length)
        {
            return false;
        }

        var mask = (1 << prefixBits) - 1;
        long result = source[position++] & mask;
        if (result < mask)
        {
            value = (int)result;
            return true;
        }

        for (var shift = 0; ; shift += 7)
        {
            if (position >= source.Length || shift > 28)
            {
                return false;
            }

            var octet = source[position++];
            result += (long)(octet & 0x7F) << shift;
            if (result > int.MaxValue)
            {
                return false;
            }

            if ((octet & 0x80) == 0)
            {
                value = (int)result;
                return true;
            }
        }
    }

    private static bool TryReadString(ReadOnlySpan<byte> source, scoped ref int position, byte[] scratch, scoped ref int scratchUsed, out ReadOnlySpan<byte> text)
    {
        text = default;
        if (position >= source.Length)
        {
            return false;
        }

        var huffman = (source[position] & 0x80) != 0;
        if (!TryReadInteger(source, ref position, 7, out var lengthBytes) || lengthBytes > source.Length - position)
        {
            return false;
        }

        var raw = source.Slice(position, lengthBytes);
        position += lengthBytes;
        if (!huffman)
        {
            text = raw;
            return true;
        }

        var destination = scratch.AsSpan(scratchUsed);
        if (!HpackHuffman.TryDecode(raw, destination, out var written))
        {
            return false;
        }

        text = destination[..written];
        scratchUsed += written;
        return true;
    }

    private bool TryGetEntry(int index, out (byte[] Name, byte[] Value) entry)
    {
        if (index >= 1 && index <= HpackStaticTable.Count)
        {
            entry = HpackStaticTable.Get(index);
            return true;
        }

        var dynamicIndex = index - HpackStaticTable.Count;
        if (dynamicIndex >= 1 && dynamicIndex <= _entries.Count)
        {
            entry = _entries[_entries.Count - dynamicIndex];
            return true;
        }

        entry = default;
        return false;
    }

    private void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var sizeBytes = name.Length + value.Length + EntryOverheadBytes;
        if (sizeBytes > _tableSizeBytesMax)
        {
            // 4.4: an entry larger than the table empties it and is not added.
            Evict(_tableSizeBytesMax);
            return;
        }

        Evict(sizeBytes);
        _entries.Add((name.ToArray(), value.ToArray()));
        _tableSizeBytes += sizeBytes;
    }

    // Drops oldest entries until roomBytes more fit under the current maximum.
    private void Evict(int roomBytes)
    {
        var evicted = 0;
        while (evicted < _entries.Count && _tableSizeBytes + roomBytes > _tableSizeBytesMax)
        {
            var (name, value) = _entries[evicted++];
            _tableSizeBytes -= name.Length + value.Length + EntryOverheadBytes;
        }

        _entries.RemoveRange(0, evicted);
    }
}
