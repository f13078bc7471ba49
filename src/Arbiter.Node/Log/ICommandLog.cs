using Arbiter.Protocol.Internal;

namespace Arbiter.Node.Log;

/// <summary>
/// Where commands become durable and ordered before they are applied: a local write-ahead log
/// on a single node, a Raft log in a cluster. The node above does not know which.
/// </summary>
public interface ICommandLog : IAsyncDisposable
{
    /// <summary>Index of the last command applied to the state machine.</summary>
    long AppliedIndex { get; }

    /// <summary>Whether this member currently knows a leader (always true on a single node).</summary>
    bool HasLeader { get; }

    /// <summary>The current term (1 on a single node).</summary>
    ulong Term { get; }

    /// <summary>
    /// Makes <paramref name="command"/> durable, applies it in log order, and returns its result.
    /// Returns only after the command is on disk (or committed by a quorum).
    /// </summary>
    Task<CommandResult> ProposeAsync(Command command, CancellationToken cancellationToken);
}
