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

    /// <summary>True when the key-value lives in a spill and <see cref="Load"/> reads it back.</summary>
    public bool IsSpilled => _value is SpilledVersion;

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

    /// <summary>True when this holds exactly <paramref name="kv"/> in memory.</summary>
    public bool Holds(KeyValue kv) => ReferenceEquals(_value, kv);

    /// <summary>True when this is spilled and its cached copy is exactly <paramref name="kv"/>.</summary>
    public bool CachesExactly(KeyValue kv) => _value is SpilledVersion spilled && ReferenceEquals(spilled.Cached, kv);

    /// <summary>
    /// The same version paged out to <paramref name="spill"/>, or this one when it is not an
    /// in-memory key-value with a value, or the spill refused it. With <paramref name="recent"/>,
    /// the key-value stays readable from memory until that cache lets it go.
    /// </summary>
    public StoredVersion SpillTo(IValueSpill spill, RecentVersions? recent = null)
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
            if (!spill.TryAppend(buffer.AsSpan(0, length), out var segment, out var offset))
            {
                return this;
            }

            var spilled = new SpilledVersion(segment, offset, length, kv.Value.Length);
            recent?.Add(spilled, kv);
            return new StoredVersion(spilled);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// A key-value's serialized bytes in a spill: 48 B on the heap instead of the message, its
    /// wrapper and the value's array — plus, while <see cref="RecentVersions"/> holds it, the
    /// key-value itself, so the versions written last read back without a read of the spill.
    /// </summary>
    internal sealed class SpilledVersion(IValueSpillSegment segment, long offset, int length, int valueLength)
    {
        // Set and cleared by RecentVersions under the state's write lock; read by any thread (a
        // stale read only costs a read of the spill, which holds the same bytes).
        private KeyValue? _cached;

        public int ValueLength => valueLength;

        /// <summary>The serialized length, what the spill holds.</summary>
        public int Length => length;

        internal KeyValue? Cached
        {
            get => Volatile.Read(ref _cached);
            set => Volatile.Write(ref _cached, value);
        }

        public KeyValue Load()
        {
            if (Cached is { } cached)
            {
                return cached;
            }

            var bytes = new byte[length];
            segment.Read(offset, bytes);
            return KeyValue.Parser.ParseFrom(bytes);
        }
    }
}
