namespace Arbiter.Server.Http2;

/// <summary>
/// Writes header fields as literals with literal names and raw strings (RFC 7541 6.2.2, 6.2.3),
/// so the receiver's dynamic table is never touched and the encoder keeps no state.
/// </summary>
internal static class HpackLiteralEncoder
{
    /// <summary>Appends one field: "never indexed" when the sender asked for it, else "without indexing".</summary>
    public static void WriteLiteral(PooledByteBuffer destination, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
    {
        ArgumentNullException.ThrowIfNull(destination);
        destination.WriteByte(neverIndexed ? (byte)0x10 : (byte)0x00);
        WriteString(destination, name);
        WriteString(destination, value);
    }

    /// <summary>Appends an HPACK integer (5.1) whose first byte carries <paramref name="flags"/> above an N-bit prefix.</summary>
    public static void WriteInteger(PooledByteBuffer destination, byte flags, int prefixBits, int value)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var mask = (1 << prefixBits) - 1;
        if (value < mask)
        {
            destination.WriteByte((byte)(flags | value));
            return;
        }

        destination.WriteByte((byte)(flags | mask));
        value -= mask;
        while (value >= 0x80)
        {
            destination.WriteByte((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }

        destination.WriteByte((byte)value);
    }

    private static void WriteString(PooledByteBuffer destination, ReadOnlySpan<byte> text)
    {
        WriteInteger(destination, 0x00, 7, text.Length);
        destination.Write(text);
    }
}
