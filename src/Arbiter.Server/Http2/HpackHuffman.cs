namespace Arbiter.Server.Http2;

/// <summary>HPACK's static Huffman code (RFC 7541 Appendix B) and a decoder for it.</summary>
internal static class HpackHuffman
{
    private const int EndOfStringSymbol = 256;

    // Code of each symbol 0..256 (256 = EOS), right-aligned, as listed in RFC 7541 Appendix B.
    private static readonly uint[] Codes =
    [
        0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
        0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
        0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
        0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
        0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
        0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
        0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
        0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
        0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
        0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
        0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
        0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
        0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
        0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
        0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
        0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
        0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
        0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
        0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
        0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
        0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
        0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
        0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
        0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
        0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
        0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
        0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
        0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
        0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
        0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
        0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
        0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
        0x3fffffff,
    ];

    // Bit length of each symbol's code, RFC 7541 Appendix B.
    private static readonly byte[] LengthsBits =
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
        30,
    ];

    // Decoding walks 4 bits at a time over the code tree's 256 inner nodes. Entry
    // [node * 16 + nibble]: bits 0-7 the node reached, 8-15 the symbol completed on the way
    // (at most one: no code is shorter than 5 bits), EmitFlag when there is one, FailFlag when
    // the bits reach EOS.
    private const int EmitFlag = 1 << 16;
    private const int FailFlag = 1 << 17;
    private static readonly int[] NibbleTransitions;

    // Whether decoding may stop at a node: it is at most 7 bits deep and its path is all ones,
    // i.e. the padding is a prefix of EOS (RFC 7541 5.2).
    private static readonly bool[] ValidEnd;

    /// <summary>Code of <paramref name="symbol"/> (0..256), right-aligned, and its length.</summary>
    public static (uint Code, int LengthBits) GetCode(int symbol) => (Codes[symbol], LengthsBits[symbol]);

    /// <summary>Longest output a Huffman string of <paramref name="encodedLengthBytes"/> can decode to (shortest code: 5 bits).</summary>
    public static int MaxDecodedLengthBytes(int encodedLengthBytes) => (int)(((long)encodedLengthBytes * 8 / 5) + 1);

    /// <summary>
    /// Decodes <paramref name="source"/> into <paramref name="destination"/>. Fails on an EOS
    /// symbol, on padding longer than 7 bits or not made of ones, and when the output does not fit.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> source, Span<byte> destination, out int writtenBytes)
    {
        writtenBytes = 0;
        var node = 0;
        foreach (var octet in source)
        {
            var high = NibbleTransitions[(node << 4) | (octet >> 4)];
            var low = NibbleTransitions[((high & 0xFF) << 4) | (octet & 0xF)];
            if (((high | low) & FailFlag) != 0)
            {
                return false;
            }

            if ((high & EmitFlag) != 0)
            {
                if (writtenBytes == destination.Length)
                {
                    return false;
                }

                destination[writtenBytes++] = (byte)(high >> 8);
            }

            if ((low & EmitFlag) != 0)
            {
                if (writtenBytes == destination.Length)
                {
                    return false;
                }

                destination[writtenBytes++] = (byte)(low >> 8);
            }

            node = low & 0xFF;
        }

        return ValidEnd[node];
    }

    static HpackHuffman()
    {
        var tree = BuildTree();
        var depth = new int[256];
        var allOnes = new bool[256];
        ValidEnd = new bool[256];
        allOnes[0] = true;
        ValidEnd[0] = true;

        // Children always get higher numbers than their parent, so one pass in order works.
        for (var node = 0; node < 256; node++)
        {
            for (var bit = 0; bit < 2; bit++)
            {
                var child = tree[(node * 2) + bit];
                if (child > 0)
                {
                    depth[child] = depth[node] + 1;
                    allOnes[child] = allOnes[node] && bit == 1;
                    ValidEnd[child] = depth[child] <= 7 && allOnes[child];
                }
            }
        }

        NibbleTransitions = new int[256 * 16];
        for (var node = 0; node < 256; node++)
        {
            for (var nibble = 0; nibble < 16; nibble++)
            {
                var current = node;
                var entry = 0;
                for (var shift = 3; shift >= 0; shift--)
                {
                    var next = tree[(current * 2) + ((nibble >> shift) & 1)];
                    if (next < 0)
                    {
                        var symbol = ~next;
                        entry |= symbol == EndOfStringSymbol ? FailFlag : EmitFlag | (symbol << 8);
                        current = 0;
                    }
                    else
                    {
                        current = next;
                    }
                }

                NibbleTransitions[(node << 4) | nibble] = entry | current;
            }
        }
    }

    // Binary tree: node n's children at [2n] (bit 0) and [2n + 1] (bit 1); a positive entry is
    // the child node, a negative one a leaf holding ~symbol. The code is complete, so no
    // entry stays empty.
    private static short[] BuildTree()
    {
        // 257 leaves need 256 inner nodes; node 0 is the root.
        var tree = new short[256 * 2];
        short nodeCount = 1;
        for (var symbol = 0; symbol < Codes.Length; symbol++)
        {
            var code = Codes[symbol];
            int length = LengthsBits[symbol];
            var node = 0;
            for (var i = length - 1; i >= 0; i--)
            {
                var slot = (node * 2) + (int)((code >> i) & 1);
                if (i == 0)
                {
                    tree[slot] = (short)~symbol;
                }
                else
                {
                    if (tree[slot] == 0)
                    {
                        tree[slot] = nodeCount++;
                    }

                    node = tree[slot];
                }
            }
        }

        return tree;
    }
}
