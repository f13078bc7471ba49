using Arbiter.Protocol.Internal;

namespace Arbiter.Node.Log;

/// <summary>
/// Where commands become durable and ordered before they are applied: a local write-ahead log
/// on a single node, a Raft log in a cluster. The node above does not know which.
/// </summary>
public interface ICommandLog : IAsyncDisposable
{
    /// <summary>Index of the last entry applied to the state machine (a Raft index in a cluster).</summary>
    long AppliedIndex { get; }

    /// <summary>Index of the last entry known committed (equal to <see cref="AppliedIndex"/> on a single node).</summary>
    long CommittedIndex { get; }

    /// <summary>Whether this member currently knows a leader (always true on a healthy single node).</summary>
    bool HasLeader { get; }

    /// <summary>Whether this member is the leader (a single node always is).</summary>
    bool IsLeader { get; }

    /// <summary>Member id of the current leader, 0 when none is known.</summary>
    ulong LeaderId { get; }

    /// <summary>The current term (1 on a single node).</summary>
    ulong Term { get; }

    /// <summary>
    /// Makes <paramref name="command"/> durable, applies it in log order, and returns its result.
    /// Returns only after the command is on disk (or committed by a quorum) and applied here.
    /// </summary>
    Task<CommandResult> ProposeAsync(Command command, CancellationToken cancellationToken);

    /// <summary>
    /// Completes once this member's state includes every write acknowledged before the call
    /// (a read started afterwards is linearizable). Immediate on a single node.
    /// </summary>
    ValueTask WaitLinearizableAsync(CancellationToken cancellationToken);

    /// <summary>Writes a snapshot now so that older log can be dropped.</summary>
    Task SnapshotAsync(CancellationToken cancellationToken);
}
