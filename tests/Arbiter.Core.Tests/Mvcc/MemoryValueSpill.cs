using Arbiter.Core.Mvcc;

namespace Arbiter.Core.Tests.Mvcc;

/// <summary>A value spill in managed memory, for tests: the state machine's spill paths without files. Can refuse appends.</summary>
internal sealed class MemoryValueSpill(Func<bool>? refuse = null) : IValueSpill
{
    private readonly Segment _segment = new();

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
            offset = _segment.Bytes.Count;
            _segment.Bytes.AddRange(bytes);
        }

        return true;
    }

    private sealed class Segment : IValueSpillSegment
    {
        public List<byte> Bytes { get; } = [];

        public int Reads { get; private set; }

        public void Read(long offset, Span<byte> destination)
        {
            lock (Bytes)
            {
                Reads++;
                System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Bytes).Slice((int)offset, destination.Length).CopyTo(destination);
            }
        }
    }
}
