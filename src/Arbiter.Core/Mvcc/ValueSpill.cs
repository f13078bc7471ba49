namespace Arbiter.Core.Mvcc;

/// <summary>
/// Where a <see cref="StateMachine"/> pages out the versions it stores, so that neither the keyspace's
/// values nor the history etcd keeps by default (no compaction) sit on the managed heap. Every
/// version with a value goes there when it is written; the versions written last stay readable
/// from memory too (<see cref="RecentVersionsSizeBytes"/>), and the others are read back when a
/// read, a compare or an overwrite needs them. What is spilled is a representation detail: the
/// state, its hash and its snapshots are the same with or without one.
/// </summary>
/// <remarks>
/// Called under the state machine's write lock, one append at a time. Reads of appended bytes may
/// come from any thread at any time, also after the state machine has moved on (a snapshot being
/// written), so appended bytes must stay readable for as long as a segment is reachable.
/// </remarks>
public interface IValueSpill
{
    /// <summary>Stores <paramref name="bytes"/> and says where they are.</summary>
    /// <param name="bytes">What to store.</param>
    /// <param name="segment">The segment holding them (kept by the caller for as long as it needs them).</param>
    /// <param name="offset">Their offset in <paramref name="segment"/>.</param>
    /// <returns>False when they could not be stored (e.g. the disk is full): the caller keeps them in memory.</returns>
    bool TryAppend(ReadOnlySpan<byte> bytes, out IValueSpillSegment segment, out long offset);

    /// <summary>
    /// How many bytes of the versions written last (estimated as they sit on the managed heap) stay
    /// readable from memory as well, so a hot key is not read back from the spill; 0 for none.
    /// </summary>
    long RecentVersionsSizeBytes => DefaultRecentVersionsSizeBytes;

    /// <summary>The default of <see cref="RecentVersionsSizeBytes"/>: 4 MiB.</summary>
    public const long DefaultRecentVersionsSizeBytes = 4L << 20;
}

/// <summary>A part of an <see cref="IValueSpill"/>, readable as long as it is reachable.</summary>
public interface IValueSpillSegment
{
    /// <summary>Reads bytes appended earlier.</summary>
    /// <param name="offset">Where they start, as <see cref="IValueSpill.TryAppend"/> returned.</param>
    /// <param name="destination">Filled completely.</param>
    /// <exception cref="IOException">The bytes could not be read back.</exception>
    void Read(long offset, Span<byte> destination);
}
