using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Arbiter.Node.Cluster;

/// <summary>
/// DotNext's write-ahead log with one change: entries a follower receives are durable before it
/// answers the leader. Raft counts a follower's acknowledgement toward the commit majority, so
/// the follower must not forget the entry after a crash. DotNext 6.12 acknowledges after writing
/// the entries to its mapped pages and flushes them (and the checkpoint that says where the log
/// ends) in the background; a member killed in between restarts with a shorter log. With a
/// majority killed at once (a power cut), a new leader elected from the shorter logs then
/// replaced an entry the old leader had already applied and acknowledged: the members diverged,
/// and a follower that had applied the replaced entry refused every snapshot after it.
/// </summary>
/// <remarks>
/// The follower path (<c>AppendEntries</c>) appends through
/// <see cref="IAuditTrail{TEntry}.AppendAsync{TEntryImpl}(ILogEntryProducer{TEntryImpl}, long, bool, CancellationToken)"/>;
/// this class re-implements only that member and waits for <see cref="WriteAheadLog.FlushAsync"/>.
/// The leader already flushes its own entries before it commits them.
/// </remarks>
internal sealed class DurableAckWriteAheadLog(WriteAheadLog.Options options, IStateMachine stateMachine)
    : WriteAheadLog(options, stateMachine), IAuditTrail<IRaftLogEntry>
{
    async ValueTask IAuditTrail<IRaftLogEntry>.AppendAsync<TEntryImpl>(ILogEntryProducer<TEntryImpl> entries, long startIndex, bool skipCommitted, CancellationToken token)
    {
        var appendsEntries = entries.RemainingCount > 0;
        await AppendAsync(entries, startIndex, skipCommitted, token).ConfigureAwait(false);
        if (appendsEntries)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            await FlushAsync(token).ConfigureAwait(false);
            Storage.StorageMetrics.WalFsyncDurationSeconds.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }
}
