using Arbiter.Node.Cluster;
using DotNext.IO;
using DotNext.IO.Log;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>
/// A follower's acknowledgement counts toward the commit majority, so the entries it acknowledges
/// must survive a crash. These tests open a second log on the same directory while the first is
/// still open and has never been disposed (what a restart after kill -9 sees).
/// </summary>
public sealed class DurableAckWriteAheadLogTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("arbiter-wal-");

    [Fact]
    public async Task Entries_appended_on_the_follower_path_are_on_disk_when_the_append_returns()
    {
        var wal = new DurableAckWriteAheadLog(Options(), new NullStateMachine(Snapshots()));
        IAuditTrail<IRaftLogEntry> followerPath = wal;

        // Nothing committed: exactly what a follower holds between its ack and the next heartbeat.
        await followerPath.AppendAsync(new LogEntryProducer<BinaryLogEntry>(Entry(1), Entry(1), Entry(1)), startIndex: 1);

        var recovered = new WriteAheadLog(Options(), new NullStateMachine(Snapshots()));
        Assert.Equal(3, recovered.LastEntryIndex);
        Assert.Equal(0, recovered.LastCommittedEntryIndex);
        GC.KeepAlive(wal); // never disposed: a disposal would flush and hide the bug
    }

    [Fact]
    public async Task An_overwritten_tail_is_recovered_as_overwritten()
    {
        var wal = new DurableAckWriteAheadLog(Options(), new NullStateMachine(Snapshots()));
        IAuditTrail<IRaftLogEntry> followerPath = wal;
        await followerPath.AppendAsync(new LogEntryProducer<BinaryLogEntry>(Entry(1), Entry(1), Entry(1)), startIndex: 1);

        // A new leader (term 2) replaces the uncommitted entries from index 2 on.
        await followerPath.AppendAsync(new LogEntryProducer<BinaryLogEntry>(Entry(2), Entry(2)), startIndex: 2);

        var recovered = new WriteAheadLog(Options(), new NullStateMachine(Snapshots()));
        Assert.Equal(3, recovered.LastEntryIndex);
        Assert.Equal(2, await TermAsync(recovered, 3));
        GC.KeepAlive(wal);
    }

    /// <summary>
    /// DotNext 6.12's flusher reads the snapshot index before it takes the log's read lock. A
    /// snapshot installed beyond the log's end (a lagging follower) in between made it flush the
    /// never-written entries up to the snapshot: "WAL page N doesn't exist on the disk", and the
    /// log refused every call after (a member stuck for good; seen in FailoverTests with a snapshot
    /// every 25 entries). The gate holds the flusher right after it read the old snapshot index,
    /// the snapshot is installed, then the flusher goes on: exactly that interleaving, every run.
    /// </summary>
    [Fact]
    public async Task A_snapshot_installed_beyond_the_end_of_the_log_while_the_flusher_runs_keeps_the_log_working()
    {
        using var gate = new FlusherGate();
        var wal = new DurableAckWriteAheadLog(Options(), gate);
        await InstallSnapshotUnderARunningFlusherAsync(wal, gate);

        await wal.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(SnapshotIndex, wal.LastCommittedEntryIndex);

        // The log goes on after the snapshot, and a restart recovers it.
        await ((IAuditTrail<IRaftLogEntry>)wal).AppendAsync(new LogEntryProducer<BinaryLogEntry>(Entry(2), Entry(2)), startIndex: SnapshotIndex + 1);
        Assert.Equal(SnapshotIndex + 2, await wal.CommitAsync(SnapshotIndex + 2) + SnapshotIndex);
        await wal.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, await TermAsync(wal, SnapshotIndex + 2));
        await wal.DisposeAsync();

        using var restartedGate = new FlusherGate(SnapshotIndex);
        await using var recovered = new WriteAheadLog(Options(), restartedGate);
        Assert.Equal(SnapshotIndex + 2, recovered.LastEntryIndex);
    }

    /// <summary>The planted check: DotNext's own log, same interleaving, breaks for good.</summary>
    [Fact]
    public async Task DotNext_log_without_the_guard_breaks_on_the_same_interleaving()
    {
        using var gate = new FlusherGate();
        await using var wal = new WriteAheadLog(Options(), gate);
        await InstallSnapshotUnderARunningFlusherAsync(wal, gate);

        var failure = await Assert.ThrowsAsync<WriteAheadLog.InternalException>(() => wal.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.IsType<WriteAheadLog.MissingPageException>(failure.InnerException);
    }

    private const long SnapshotIndex = 1000; // metadata pages hold 64 entries: page 15, the log's end is on page 0

    private static async Task InstallSnapshotUnderARunningFlusherAsync(WriteAheadLog wal, FlusherGate gate)
    {
#pragma warning disable CA1859 // the interface is the follower's path, which DurableAckWriteAheadLog re-implements
        IAuditTrail<IRaftLogEntry> log = wal;
#pragma warning restore CA1859
        await log.AppendAsync(new LogEntryProducer<BinaryLogEntry>(Entry(1), Entry(1), Entry(1)), startIndex: 1);
        await wal.CommitAsync(3);
        await wal.FlushAsync().WaitAsync(TimeSpan.FromSeconds(30));

        // Wake the flusher and hold it just after it read the snapshot index (none yet).
        gate.HoldNextRead();
        _ = wal.FlushAsync();
        await gate.Held.WaitAsync(TimeSpan.FromSeconds(30));

        // A leader sends a snapshot far beyond this log's end (what a lagging follower receives).
        await log.AppendAsync(new FakeSnapshot(SnapshotIndex, term: 1), SnapshotIndex);
        gate.Release();
    }

    private WriteAheadLog.Options Options() => new()
    {
        Location = Path.Combine(_root.FullName, "raft"),
        HashAlgorithm = WriteAheadLog.IntegrityHashAlgorithm.Crc32,
    };

    private DirectoryInfo Snapshots() => _root.CreateSubdirectory("snap");

    private static BinaryLogEntry Entry(long term) => new() { Term = term, Content = new byte[] { 1, 2, 3 } };

    private static ValueTask<long> TermAsync(WriteAheadLog wal, long index) => wal.ReadAsync(new TermReader(), index, index);

    public void Dispose()
    {
        try
        {
            _root.Delete(recursive: true);
        }
        catch (IOException)
        {
            // the never-disposed logs may still hold their files; the temp directory is reclaimed later
        }
    }

    private sealed class TermReader : ILogEntryConsumer<IRaftLogEntry, long>
    {
        public bool LogEntryMetadataOnly => true;

        public ValueTask<long> ReadAsync<TEntry, TList>(TList entries, long? snapshotIndex, CancellationToken token)
            where TEntry : notnull, IRaftLogEntry
            where TList : notnull, IReadOnlyList<TEntry>
            => ValueTask.FromResult(entries[^1].Term);
    }

    /// <summary>A state machine that can hold the next reader of its snapshot (the flusher).</summary>
    private sealed class FlusherGate(long snapshotIndex = 0) : IStateMachine, IDisposable
    {
        private readonly ManualResetEventSlim _release = new(initialState: true);
        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile bool _holdNext;
        private volatile ISnapshot? _snapshot = snapshotIndex > 0 ? new FakeSnapshot(snapshotIndex, term: 1) : null;

        public Task Held => _held.Task;

        public ISnapshot? Snapshot
        {
            get
            {
                var snapshot = _snapshot; // read first: the flusher keeps what it read before the hold
                if (_holdNext)
                {
                    _holdNext = false;
                    _held.TrySetResult();
                    _release.Wait(TimeSpan.FromSeconds(30));
                }

                return snapshot;
            }
        }

        public void HoldNextRead()
        {
            _release.Reset();
            _holdNext = true;
        }

        public void Release() => _release.Set();

        public ValueTask<long> ApplyAsync(LogEntry entry, CancellationToken token)
        {
            if (entry.IsSnapshot)
            {
                _snapshot = new FakeSnapshot(entry.Index, entry.Term);
            }

            return ValueTask.FromResult(entry.Index);
        }

        public ValueTask ReclaimGarbageAsync(long watermark, CancellationToken token) => ValueTask.CompletedTask;

        public void Dispose() => _release.Dispose();
    }

    private sealed class FakeSnapshot(long index, long term) : ISnapshot
    {
        public long Index => index;

        public long Term => term;

        public bool IsReusable => true;

        public long? Length => 0;

        public ValueTask WriteToAsync<TWriter>(TWriter writer, CancellationToken token)
            where TWriter : notnull, IAsyncBinaryWriter
            => ValueTask.CompletedTask;
    }

    private sealed class NullStateMachine(DirectoryInfo location) : SimpleStateMachine(location)
    {
        protected override ValueTask<bool> ApplyAsync(LogEntry entry, CancellationToken token) => ValueTask.FromResult(false);

        protected override ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token) => ValueTask.CompletedTask;

        protected override ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token) => ValueTask.CompletedTask;
    }
}
