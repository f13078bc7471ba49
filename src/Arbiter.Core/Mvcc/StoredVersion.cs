using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Mvcc;

/// <summary>
/// One stored version of a key: its <see cref="KeyValue"/> in memory, the same key-value paged out
/// to an <see cref="IValueSpill"/>, or nothing (a tombstone). A struct over one reference, so it
/// costs what the <see cref="KeyValue"/> reference it replaces cost.
/// </summary>
internal readonly struct StoredVersion
{
    // A KeyValue, a SpilledVersion, or null.
    private readonly object? _value;

    private StoredVersion(object? value) => _value = value;

    /// <summary>True for a tombstone (no key-value).</summary>
    public bool IsTombstone => _value is null;

    /// <summary>The key-value when it is in memory, else null (a tombstone or spilled).</summary>
    public KeyValue? InMemory => _value as KeyValue;

    /// <summary>The value's length in bytes (0 for a tombstone), without reading a spill.</summary>
    public int ValueLength => _value switch
    {
        KeyValue kv => kv.Value.Length,
        SpilledVersion spilled => spilled.ValueLength,
        _ => 0,
    };

    public static implicit operator StoredVersion(KeyValue? kv) => new(kv);

    /// <summary>The key-value (read back from its spill when spilled; a fresh copy then), or null for a tombstone.</summary>
    public KeyValue? Load() => _value switch
    {
        KeyValue kv => kv,
        SpilledVersion spilled => spilled.Load(),
        _ => null,
    };

    /// <summary>
    /// The same version paged out to <paramref name="spill"/>, or this one when it is not an
    /// in-memory key-value with a value, or the spill refused it.
    /// </summary>
    public StoredVersion SpillTo(IValueSpill spill)
    {
        if (_value is not KeyValue { Value.IsEmpty: false } kv)
        {
            return this;
        }

        var length = kv.CalculateSize();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            kv.WriteTo(buffer.AsSpan(0, length));
            return spill.TryAppend(buffer.AsSpan(0, length), out var segment, out var offset)
                ? new StoredVersion(new SpilledVersion(segment, offset, length, kv.Value.Length))
                : this;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// A key-value's serialized bytes in a spill: 40 B on the heap instead of the message, its
    /// wrappers and the value's array. Read back and parsed each time: keeping key-value objects for
    /// hot keys (4 MiB of them, tried) had them promoted through the GC's generations to die in the
    /// oldest, the retention this representation exists to avoid; the node's spill keeps its recent
    /// bytes instead.
    /// </summary>
    private sealed class SpilledVersion(IValueSpillSegment segment, long offset, int length, int valueLength)
    {
        public int ValueLength => valueLength;

        public KeyValue Load()
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
    }
}
