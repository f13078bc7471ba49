using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Mvcc;

/// <summary>
/// One stored version of a key: its <see cref="KeyValue"/> in memory, the same key-value paged out
/// to an <see cref="IValueSpill"/>, or nothing (a tombstone). A key's history keeps these parts in
/// its entries (<see cref="KeyRevision"/>), so a version paged out costs no object of its own.
/// </summary>
internal readonly struct StoredVersion
{
    /// <summary>Offsets in a segment below 2^40 (1 TiB) fit the packed place.</summary>
    private const int OffsetBits = 40;

    /// <summary>Values shorter than 2^24 bytes (16 MiB) fit the packed place.</summary>
    private const int ValueLengthBits = 64 - OffsetBits;

    private const long OffsetMask = (1L << OffsetBits) - 1;

    private StoredVersion(object? value, long place, int length)
    {
        Value = value;
        Place = place;
        Length = length;
    }

    /// <summary>
    /// A <see cref="KeyValue"/> (in memory), an <see cref="IValueSpillSegment"/> (paged out, at
    /// <see cref="Place"/>), a <see cref="SpilledVersion"/> (paged out, too far into its segment
    /// or too long for the packed place), or null (a tombstone).
    /// </summary>
    internal object? Value { get; }

    /// <summary>For a segment: the offset in it (low 40 bits) and the value's length (high 24 bits); else 0.</summary>
    internal long Place { get; }

    /// <summary>For a segment: the serialized key-value's length in bytes; else 0.</summary>
    internal int Length { get; }

    /// <summary>True for a tombstone (no key-value).</summary>
    public bool IsTombstone => Value is null;

    /// <summary>The key-value when it is in memory, else null (a tombstone or spilled).</summary>
    public KeyValue? InMemory => Value as KeyValue;

    /// <summary>The value's length in bytes (0 for a tombstone), without reading a spill.</summary>
    public int ValueLength => Value switch
    {
        KeyValue kv => kv.Value.Length,
        IValueSpillSegment => (int)((ulong)Place >> OffsetBits),
        SpilledVersion spilled => spilled.ValueLength,
        _ => 0,
    };

    public static implicit operator StoredVersion(KeyValue? kv) => new(kv, 0, 0);

    /// <summary>Reassembles a version from the parts a history entry keeps (<see cref="Value"/> read first: see <see cref="KeyRevision"/>).</summary>
    internal static StoredVersion FromParts(object? value, long place, int length) => new(value, place, length);

    /// <summary>The key-value (read back from its spill when spilled; a fresh copy then), or null for a tombstone.</summary>
    public KeyValue? Load() => Value switch
    {
        KeyValue kv => kv,
        IValueSpillSegment segment => Read(segment, Place & OffsetMask, Length),
        SpilledVersion spilled => Read(spilled.Segment, spilled.Offset, spilled.Length),
        _ => null,
    };

    /// <summary>
    /// The same version paged out to <paramref name="spill"/>, or this one when it is not an
    /// in-memory key-value with a value, or the spill refused it.
    /// </summary>
    public StoredVersion SpillTo(IValueSpill spill)
    {
        if (Value is not KeyValue { Value.IsEmpty: false } kv)
        {
            return this;
        }

        var length = kv.CalculateSize();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            kv.WriteTo(buffer.AsSpan(0, length));
            if (!spill.TryAppend(buffer.AsSpan(0, length), out var segment, out var offset))
            {
                return this;
            }

            var valueLength = kv.Value.Length;
            return (ulong)offset <= OffsetMask && valueLength < 1 << ValueLengthBits
                ? new StoredVersion(segment, offset | ((long)valueLength << OffsetBits), length)
                : new StoredVersion(new SpilledVersion(segment, offset, length, valueLength), 0, 0);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static KeyValue Read(IValueSpillSegment segment, long offset, int length)
    {
        // Parsed from a scratch buffer: the message copies what it keeps, so the serialized
        // bytes need not be an allocation of their own.
        if (length <= StackBufferBytesMax)
        {
            Span<byte> scratch = stackalloc byte[length];
            segment.Read(offset, scratch);
            return KeyValue.Parser.ParseFrom(scratch);
        }

        var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var bytes = rented.AsSpan(0, length);
            segment.Read(offset, bytes);
            return KeyValue.Parser.ParseFrom(bytes);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private const int StackBufferBytesMax = 1024;

    /// <summary>
    /// Where a version lies that the packed place cannot say (an offset from 1 TiB on, a value
    /// from 16 MiB on): 40 B on the heap. Read back and parsed each time, as every spilled
    /// version: keeping key-value objects for hot keys (4 MiB of them, tried) had them promoted
    /// through the GC's generations to die in the oldest; the node's spill keeps its recent bytes
    /// instead.
    /// </summary>
    private sealed class SpilledVersion(IValueSpillSegment segment, long offset, int length, int valueLength)
    {
        public IValueSpillSegment Segment => segment;

        public long Offset => offset;

        public int Length => length;

        public int ValueLength => valueLength;
    }
}
