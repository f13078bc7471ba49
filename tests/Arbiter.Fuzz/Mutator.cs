namespace Arbiter.Fuzz;

/// <summary>Byte-level mutations, with two that know the formats: protobuf varints and length fields (HTTP/2's 24-bit frame length, gRPC's 32-bit message length).</summary>
public static class Mutator
{
    private static readonly byte[] InterestingBytes = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x3F, 0x40, 0x20, 0x0A, 0x12, 0x1A, 0x22];

    private static readonly long[] InterestingLengths = [0, 1, 2, 8, 9, 0x3F, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0xFFFF, 0x10000, 0xFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF];

    /// <summary>A corpus entry with one to four stacked mutations, at most <paramref name="lengthMax"/> bytes.</summary>
    public static byte[] Mutate(Random random, IReadOnlyList<byte[]> corpus, int lengthMax)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(corpus);
        var data = new List<byte>(corpus[random.Next(corpus.Count)]);
        var count = 1 + random.Next(4);
        for (var m = 0; m < count; m++)
        {
            MutateOnce(random, corpus, data);
        }

        if (data.Count > lengthMax)
        {
            data.RemoveRange(lengthMax, data.Count - lengthMax);
        }

        return [.. data];
    }

    private static void MutateOnce(Random random, IReadOnlyList<byte[]> corpus, List<byte> data)
    {
        var position = data.Count == 0 ? 0 : random.Next(data.Count);
        switch (random.Next(12))
        {
            case 0 when data.Count > 0:
                data[position] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when data.Count > 0:
                data[position] = (byte)random.Next(256);
                break;
            case 2 when data.Count > 0:
                data[position] = InterestingBytes[random.Next(InterestingBytes.Length)];
                break;
            case 3 when data.Count > 0:
                data.RemoveRange(position, data.Count - position);
                break;
            case 4:
                {
                    var inserted = new byte[1 + random.Next(random.Next(2) == 0 ? 4 : 64)];
                    random.NextBytes(inserted);
                    data.InsertRange(position, inserted);
                    break;
                }

            case 5 when data.Count > 0:
                data.RemoveRange(position, Math.Min(data.Count - position, 1 + random.Next(16)));
                break;
            case 6 when data.Count > 0:
                {
                    var length = Math.Min(data.Count - position, 1 + random.Next(64));
                    var chunk = data.GetRange(position, length);
                    var repeats = random.Next(8) == 0 ? 1 + random.Next(32) : 1;
                    for (var r = 0; r < repeats; r++)
                    {
                        data.InsertRange(random.Next(data.Count + 1), chunk);
                    }

                    break;
                }

            case 7:
                {
                    // Splice: a piece of another entry, inserted or overwriting.
                    var other = corpus[random.Next(corpus.Count)];
                    if (other.Length == 0)
                    {
                        break;
                    }

                    var start = random.Next(other.Length);
                    var length = Math.Min(other.Length - start, 1 + random.Next(256));
                    if (random.Next(2) == 0 || data.Count == 0)
                    {
                        data.InsertRange(position, other.AsSpan(start, length).ToArray());
                    }
                    else
                    {
                        for (var i = 0; i < length && position + i < data.Count; i++)
                        {
                            data[position + i] = other[start + i];
                        }
                    }

                    break;
                }

            case 8 when data.Count > 0:
                ReplaceVarint(random, data, position);
                break;
            case 9 when data.Count > 0:
                WriteLengthField(random, data, position, random.Next(2) == 0 ? 3 : 4);
                break;
            case 10 when data.Count > 1:
                // Cross-over at one point with another entry.
                var tail = corpus[random.Next(corpus.Count)];
                data.RemoveRange(position, data.Count - position);
                data.AddRange(tail.AsSpan(random.Next(tail.Length + 1)).ToArray());
                break;
            default:
                if (data.Count > 0)
                {
                    data[position] = (byte)(data[position] + random.Next(-4, 5));
                }

                break;
        }
    }

    /// <summary>Replaces the varint starting at <paramref name="position"/> (or the byte there) with another varint: small, huge, negative, or over-long.</summary>
    private static void ReplaceVarint(Random random, List<byte> data, int position)
    {
        var oldLength = 1;
        while (oldLength < 10 && position + oldLength - 1 < data.Count && (data[position + oldLength - 1] & 0x80) != 0)
        {
            oldLength++;
        }

        oldLength = Math.Min(oldLength, data.Count - position);
        ulong value = random.Next(6) switch
        {
            0 => (ulong)random.Next(128),
            1 => (ulong)InterestingLengths[random.Next(InterestingLengths.Length)],
            2 => ulong.MaxValue, // -1 as an int64
            3 => (ulong)random.NextInt64(),
            4 => (ulong)(1L << random.Next(64)),
            _ => (ulong)random.Next(1 << 20),
        };
        var encoded = new List<byte>();
        do
        {
            var b = (byte)(value & 0x7F);
            value >>= 7;
            encoded.Add(value != 0 ? (byte)(b | 0x80) : b);
        }
        while (value != 0);

        if (random.Next(8) == 0)
        {
            // Over-long encoding: continuation bytes of zeros.
            encoded[^1] |= 0x80;
            encoded.AddRange(Enumerable.Repeat((byte)0x80, random.Next(8)));
            encoded.Add(0);
        }

        data.RemoveRange(position, oldLength);
        data.InsertRange(position, encoded);
    }

    private static void WriteLengthField(Random random, List<byte> data, int position, int widthBytes)
    {
        var value = random.Next(3) switch
        {
            0 => InterestingLengths[random.Next(InterestingLengths.Length)],
            1 => Math.Max(0, data.Count - position - widthBytes + random.Next(-2, 3)),
            _ => random.Next(1 << 16),
        };
        for (var i = 0; i < widthBytes && position + i < data.Count; i++)
        {
            data[position + i] = (byte)(value >> (8 * (widthBytes - 1 - i)));
        }
    }
}
