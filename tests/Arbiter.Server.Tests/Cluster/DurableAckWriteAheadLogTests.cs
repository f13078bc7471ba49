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

    private sealed class NullStateMachine(DirectoryInfo location) : SimpleStateMachine(location)
    {
        protected override ValueTask<bool> ApplyAsync(LogEntry entry, CancellationToken token) => ValueTask.FromResult(false);

        protected override ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token) => ValueTask.CompletedTask;

        protected override ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token) => ValueTask.CompletedTask;
    }
}
