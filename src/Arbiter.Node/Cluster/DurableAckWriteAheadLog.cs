using System.Reflection;
using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Arbiter.Node.Cluster;

/// <summary>
/// DotNext's write-ahead log with two changes, both on a follower's path.
/// <list type="number">
/// <item>Entries a follower receives are durable before it answers the leader. Raft counts a
/// follower's acknowledgement toward the commit majority, so the follower must not forget the
/// entry after a crash. DotNext 6.12 acknowledges after writing the entries to its pages (mapped
/// or in process memory: <see cref="RaftLogPages"/>) and flushes them (and the checkpoint that says where the log ends) in the background; a member
/// killed in between restarts with a shorter log. With a majority killed at once (a power cut), a
/// new leader elected from the shorter logs then replaced an entry the old leader had already
/// applied and acknowledged: the members diverged, and a follower that had applied the replaced
/// entry refused every snapshot after it.</item>
/// <item>A snapshot installed beyond the end of the log no longer kills the log. DotNext's
/// background flusher reads the snapshot index before it takes the log's read lock; when a
/// snapshot install (which holds the write lock) runs in between, the flusher then sees the log's
/// end moved to the snapshot index but still the old snapshot index, and flushes the entries in
/// between, which were never written: their metadata page does not exist, the flusher fails with
/// "WAL page N doesn't exist on the disk", and every later call to the log throws. Right after the
/// state machine installed the snapshot (still under the write lock), the flusher's "first
/// unflushed entry" is moved past the snapshot, which is what the snapshot means: everything up
/// to it is in the snapshot file, nothing there is left to flush.</item>
/// </list>
/// </summary>
/// <remarks>
/// The follower path (<c>AppendEntries</c>) appends through
/// <see cref="IAuditTrail{TEntry}.AppendAsync{TEntryImpl}(ILogEntryProducer{TEntryImpl}, long, bool, CancellationToken)"/>;
/// this class re-implements only that member and waits for <see cref="WriteAheadLog.FlushAsync"/>.
/// The leader already flushes its own entries before it commits them. The second change needs a
/// private setter of DotNext's log (there is no public way to say "nothing below here to flush");
/// it is looked up once, and a DotNext without it fails the member's start with a clear message
/// rather than running with the bug (<c>DurableAckWriteAheadLogTests</c> pin the behaviour).
/// </remarks>
internal sealed class DurableAckWriteAheadLog : WriteAheadLog, IAuditTrail<IRaftLogEntry>
{
    private static readonly Action<WriteAheadLog, long> SetFirstUnflushedIndex = FindFirstUnflushedIndexSetter();

    private long _lastLeaderMessageTicks = Environment.TickCount64;

    public DurableAckWriteAheadLog(Options options, IStateMachine stateMachine)
        : this(options, new SnapshotInstallGuard(stateMachine))
    {
    }

    private DurableAckWriteAheadLog(Options options, SnapshotInstallGuard guard)
        : base(options, guard)
    {
        guard.Installed = snapshotIndex => SetFirstUnflushedIndex(this, snapshotIndex + 1);
    }

    /// <summary>
    /// <see cref="Environment.TickCount64"/> when this member last took entries or a heartbeat from
    /// a leader (its start, before the first): what <see cref="SilentLeaderWatch{TMember}"/> judges.
    /// </summary>
    public long LastLeaderMessageTicks => Volatile.Read(ref _lastLeaderMessageTicks);

    /// <summary>
    /// Records a message from a leader that does not reach the append below: DotNext names a
    /// leader (its <c>LeaderChanged</c>) only on an AppendEntries or InstallSnapshot from it, also
    /// when the follower's log does not match yet.
    /// </summary>
    public void NoteLeaderMessage() => Volatile.Write(ref _lastLeaderMessageTicks, Environment.TickCount64);

    async ValueTask IAuditTrail<IRaftLogEntry>.AppendAsync<TEntryImpl>(ILogEntryProducer<TEntryImpl> entries, long startIndex, bool skipCommitted, CancellationToken token)
    {
        // DotNext calls this for every AppendEntries from the current leader whose log matches,
        // empty heartbeats included.
        NoteLeaderMessage();
        var appendsEntries = entries.RemainingCount > 0;
        await AppendAsync(entries, startIndex, skipCommitted, token).ConfigureAwait(false);
        if (appendsEntries)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            await FlushAsync(token).ConfigureAwait(false);
            Storage.StorageMetrics.WalFsyncDurationSeconds.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private static Action<WriteAheadLog, long> FindFirstUnflushedIndexSetter()
    {
        const string name = "UnflushedIndex";
        var setter = typeof(WriteAheadLog).GetProperty(name, BindingFlags.Instance | BindingFlags.NonPublic)?.GetSetMethod(nonPublic: true);
        if (setter is null || setter.GetParameters() is not [{ ParameterType: var type }] || type != typeof(long))
        {
            throw new InvalidOperationException(
                $"This DotNext.Net.Cluster ({typeof(WriteAheadLog).Assembly.GetName().Version}) has no private '{name}' setter on WriteAheadLog; " +
                "Arbiter needs it to install snapshots safely (see DurableAckWriteAheadLog). Use the DotNext version Arbiter pins.");
        }

        return setter.CreateDelegate<Action<WriteAheadLog, long>>();
    }

    /// <summary>
    /// Passes everything to the real state machine, and tells the log once a snapshot is
    /// installed. DotNext applies a received snapshot under the log's write lock, so the log's
    /// flush position moves before the flusher can look at it.
    /// </summary>
    private sealed class SnapshotInstallGuard(IStateMachine inner) : IStateMachine
    {
        public Action<long>? Installed { get; set; }

        public ISnapshot? Snapshot => inner.Snapshot;

        int IStateMachine.Version => inner.Version;

        public async ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token)
        {
            var applied = await inner.ApplyAsync(entry, token).ConfigureAwait(false);
            if (entry.IsSnapshot && inner.Snapshot is { } snapshot)
            {
                Installed?.Invoke(snapshot.Index);
            }

            return applied;
        }

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => inner.ReclaimGarbageAsync(watermark, token);
    }
}
