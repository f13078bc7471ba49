using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;

namespace Arbiter.Core;

/// <summary>What applying one command produced.</summary>
/// <param name="Result">The response (or deterministic error) for the proposer.</param>
/// <param name="Events">
/// Watch events the command produced, in order; each event's revision is its <c>Kv.ModRevision</c>
/// (a DELETE event's kv carries the deletion revision). Empty when nothing changed.
/// </param>
public sealed record ApplyOutcome(CommandResult Result, IReadOnlyList<Event> Events);

/// <summary>A slice of the revision history, for watch catch-up.</summary>
/// <param name="Events">Events with revision ≥ the requested start, in revision order.</param>
/// <param name="NextRevision">The revision to ask for next (one past the last revision covered).</param>
public sealed record EventHistorySlice(IReadOnlyList<Event> Events, long NextRevision);

/// <summary>Result of <see cref="StateMachine.HashKv"/>.</summary>
/// <param name="Hash">Hash of every key-value version at or below the revision and above the compaction point.</param>
/// <param name="CompactRevision">The compaction point the hash covers from.</param>
/// <param name="Revision">The revision hashed up to.</param>
public sealed record KvHash(uint Hash, long CompactRevision, long Revision);
