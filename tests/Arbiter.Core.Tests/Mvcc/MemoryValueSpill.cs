using Arbiter.Core.Mvcc;

namespace Arbiter.Core.Tests.Mvcc;

/// <summary>A value spill in managed memory, for tests: the state machine's spill paths without files. Can refuse appends.</summary>
/// <param name="refuse">Says whether to refuse an append (null: take every one).</param>
/// <param name="offsetBase">Added to every offset handed out (from 2^40 on, too far for a history entry's packed place).</param>
internal sealed class MemoryValueSpill(Func<bool>? refuse = null, long offsetBase = 0) : IValueSpill
{
    private readonly Segment _segment = new(offsetBase);

    /// <summary>Appends taken.</summary>
    public int Appends { get; private set; }

    /// <summary>Appends refused.</summary>
    public int Refused { get; private set; }

    /// <summary>Reads of spilled bytes.</summary>
    public int Reads => _segment.Reads;

    public bool TryAppend(ReadOnlySpan<byte> bytes, out IValueSpillSegment segment, out long offset)
    {
        segment = _segment;
        if (refuse?.Invoke() == true)
        {
            Refused++;
            offset = 0;
            return false;
        }

        Appends++;
        lock (_segment.Bytes)
        {
            offset = offsetBase + _segment.Bytes.Count;
            _segment.Bytes.AddRange(bytes);
        }

        return true;
    }

    private sealed class Segment(long offsetBase) : IValueSpillSegment
    {
        public List<byte> Bytes { get; } = [];

        public int Reads { get; private set; }

        public void Read(long offset, Span<byte> destination)
        {
            lock (Bytes)
            {
                Reads++;
                System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Bytes).Slice(checked((int)(offset - offsetBase)), destination.Length).CopyTo(destination);
            }
        }
    }
}
