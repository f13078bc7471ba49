namespace Arbiter.Core.Mvcc;

/// <summary>
/// Where a <see cref="StateMachine"/> pages out the versions it stores, so that neither the keyspace's
/// values nor the history etcd keeps by default (no compaction) sit on the managed heap. Every
/// version with a value goes there when it is written, and is read back (and parsed) whenever a
/// read, a compare or an overwrite needs it; a spill keeps what it likes in memory to make that
/// cheap for recent versions. What is spilled is a representation detail: the state, its hash and
/// its snapshots are the same with or without one.
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
