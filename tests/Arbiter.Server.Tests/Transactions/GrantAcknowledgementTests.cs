using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Node.Log;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;

namespace Arbiter.Server.Tests.Transactions;

/// <summary>
/// A single node answers transaction Begin and Lock batches once they are written, before their
/// fsync (LocalCommandLog), and moves its transaction numbers past them at every start: a grant a
/// power loss takes from the log aborts its transaction, and its id and fencing token are never
/// handed out again.
/// </summary>
public sealed class GrantAcknowledgementTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "arbiter-grants-" + Guid.NewGuid().ToString("N"));

    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    private static BeginRequest BeginLocking(long lease, string key) => new()
    {
        Lease = lease,
        Locks = { new LockTarget { Key = B(key), Mode = LockMode.Exclusive } },
    };

    /// <summary>
    /// Grants a lease and runs a first transaction to its commit. The first Begin a node ever applies
    /// is fsynced before it is answered; from then on grants are answered before their fsync.
    /// </summary>
    private static async Task<long> PutLockTableInUseAsync(ArbiterNode node)
    {
        var lease = (await node.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
        var first = await node.TxnBeginAsync(new BeginRequest { Lease = lease });
        await node.TxnCommitAsync(new CommitRequest { TxnId = first.TxnId });
        return lease;
    }

    [Fact]
    public async Task Grants_are_answered_before_their_fsync_once_the_lock_table_is_in_use()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory });
        var lease = (await node.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

        // The first Begin ever is fsynced first: before it a restart would have nothing to move past.
        var first = await node.TxnBeginAsync(BeginLocking(lease, "a"));
        Assert.Equal(0, node.CommandsAnsweredBeforeFsync);
        await node.TxnCommitAsync(new CommitRequest { TxnId = first.TxnId, Writes = { new RequestOp { RequestPut = new PutRequest { Key = B("a"), Value = B("1") } } } });

        var second = await node.TxnBeginAsync(BeginLocking(lease, "a"));
        Assert.Equal(1, node.CommandsAnsweredBeforeFsync);
        await node.TxnLockAsync(new LockRequest { TxnId = second.TxnId, Key = B("b"), Mode = LockMode.Exclusive });
        Assert.Equal(2, node.CommandsAnsweredBeforeFsync);

        // Commits and everything else wait for their fsync.
        await node.TxnCommitAsync(new CommitRequest { TxnId = second.TxnId });
        await node.PutAsync(new PutRequest { Key = B("c"), Value = B("1") });
        Assert.Equal(2, node.CommandsAnsweredBeforeFsync);
    }

    [Fact]
    public async Task An_answered_grant_is_fsynced_soon_even_when_no_command_follows()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory });
        var lease = await PutLockTableInUseAsync(node);

        // Answered before its fsync, and nothing comes after it to take the fsync along: the log's
        // writer thread fsyncs it once the grant delay (1 ms) has passed.
        await node.TxnBeginAsync(BeginLocking(lease, "a"));
        Assert.Equal(1, node.CommandsAnsweredBeforeFsync);
        var applied = node.AppliedIndex;
        await Infrastructure.Eventually.TrueAsync(() => Task.FromResult(node.DurableLogIndex >= applied), TimeSpan.FromSeconds(10), $"index {applied} fsynced");
    }

    [Fact]
    public async Task Grants_coming_back_to_back_cannot_push_an_owed_fsync_off()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory });
        var lease = await PutLockTableInUseAsync(node);

        // The grant delay's clock moves only when this test says so: the log's writer thread then
        // pays an owed fsync at most right after a move, and whether it does before the next grant
        // is written is a race. What must hold whoever wins: a grant written after the fsync owed
        // for the one before became overdue is written after that fsync.
        var ticks = System.Diagnostics.Stopwatch.GetTimestamp();
        node.LocalLog!.Timestamp = () => Interlocked.Read(ref ticks);
        var txn = await node.TxnBeginAsync(BeginLocking(lease, "k0"));
        for (var i = 1; i <= 50; i++)
        {
            var previousGrant = node.AppliedIndex;
            Interlocked.Add(ref ticks, System.Diagnostics.Stopwatch.Frequency / 100); // 10 ms on: its fsync is overdue
            await node.TxnLockAsync(new LockRequest { TxnId = txn.TxnId, Key = B($"k{i}"), Mode = LockMode.Exclusive });
            Assert.True(node.DurableLogIndex >= previousGrant, $"grant {i}: the grant at index {previousGrant} was still not fsynced (durable up to {node.DurableLogIndex}) when the next one was answered");
        }

        Assert.Equal(51, node.CommandsAnsweredBeforeFsync);
    }

    /// <summary>
    /// A commit that comes after its grant's fsync became overdue pays one fsync, which covers the
    /// grant too: the owed fsync is not paid first as one of its own.
    /// </summary>
    [Fact]
    public async Task A_commit_after_its_grants_fsync_became_overdue_pays_one_fsync_for_both()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory });
        var lease = await PutLockTableInUseAsync(node);

        // The clock moves only for this test's calls. The log's writer thread keeps seeing the
        // grant's fsync as not yet due, so it cannot pay it before the commit comes (a race).
        var start = System.Diagnostics.Stopwatch.GetTimestamp();
        var ticks = start;
        node.LocalLog!.Timestamp = () => Thread.CurrentThread.Name == LocalCommandLog.WriterThreadName ? start : Interlocked.Read(ref ticks);
        var txn = await node.TxnBeginAsync(BeginLocking(lease, "k1"));
        Assert.Equal(1, node.CommandsAnsweredBeforeFsync);
        Assert.True(node.DurableLogIndex < node.AppliedIndex, "the grant was fsynced before it was answered");

        Interlocked.Add(ref ticks, System.Diagnostics.Stopwatch.Frequency / 100); // 10 ms on: the grant's fsync is overdue
        var syncsBefore = node.LogDataSyncCount;
        await node.TxnCommitAsync(new CommitRequest { TxnId = txn.TxnId });

        Assert.Equal(syncsBefore + 1, node.LogDataSyncCount);
        Assert.True(node.DurableLogIndex >= node.AppliedIndex, $"the commit (index {node.AppliedIndex}) answered before its fsync (durable {node.DurableLogIndex})");
    }

    [Fact]
    public async Task A_lock_command_that_aborts_a_deadlock_victim_is_fsynced_before_it_is_answered()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory });
        var lease = await PutLockTableInUseAsync(node);

        var older = await node.TxnBeginAsync(BeginLocking(lease, "a"));
        var younger = await node.TxnBeginAsync(BeginLocking(lease, "b"));
        var olderWaits = node.TxnLockAsync(new LockRequest { TxnId = older.TxnId, Key = B("b"), Mode = LockMode.Exclusive });
        await Infrastructure.Eventually.TrueAsync(() => Task.FromResult(node.CommandsAnsweredBeforeFsync == 3), TimeSpan.FromSeconds(10), "the older transaction queued for b");

        // The younger one closes the cycle and is its victim: that abort is fsynced before the
        // answer goes out (lost, it would bring the victim back with its locks after a restart).
        var deadlock = await Assert.ThrowsAsync<EtcdException>(() => node.TxnLockAsync(new LockRequest { TxnId = younger.TxnId, Key = B("a"), Mode = LockMode.Exclusive }));
        Assert.Equal(TransactionError.Types.Kind.Deadlock, deadlock.Error.Transaction?.Kind);
        Assert.Equal(3, node.CommandsAnsweredBeforeFsync);
        Assert.True(node.DurableLogIndex >= node.AppliedIndex, $"the victim's abort (index {node.AppliedIndex}) answered before its fsync (durable {node.DurableLogIndex})");
        Assert.NotEmpty((await olderWaits).FencingTokens);
    }

    [Fact]
    public async Task With_lock_grants_await_fsync_no_grant_is_answered_before_its_fsync()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { DataDirectory = _directory, LockGrantsAwaitFsync = true });
        var lease = (await node.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
        for (var i = 0; i < 3; i++)
        {
            var txn = await node.TxnBeginAsync(BeginLocking(lease, "a"));
            await node.TxnCommitAsync(new CommitRequest { TxnId = txn.TxnId });
        }

        Assert.Equal(0, node.CommandsAnsweredBeforeFsync);
    }

    [Fact]
    public async Task A_grant_lost_with_the_log_tail_aborts_its_transaction_and_its_numbers_are_never_handed_out_again()
    {
        var options = new NodeOptions { DataDirectory = _directory };
        var durableCopy = _directory + "-durable";
        long lostTxnId, lostToken;
        await using (var node = await ArbiterNode.StartAsync(options))
        {
            var lease = (await node.LeaseGrantAsync(new LeaseGrantRequest { TTL = 600 })).ID;
            var first = await node.TxnBeginAsync(BeginLocking(lease, "a"));
            await node.TxnCommitAsync(new CommitRequest { TxnId = first.TxnId });

            // Everything so far was fsynced (a commit is). The directory as it is now is what a
            // power loss right after the next grant's answer would leave: that grant is written,
            // answered, and not yet on disk.
            CopyDirectory(_directory, durableCopy);
            var lost = await node.TxnBeginAsync(BeginLocking(lease, "a"));
            Assert.Equal(1, node.CommandsAnsweredBeforeFsync);
            (lostTxnId, lostToken) = (lost.TxnId, Assert.Single(lost.FencingTokens));
        }

        Directory.Delete(_directory, recursive: true);
        Directory.Move(durableCopy, _directory);
        await using (var node = await ArbiterNode.StartAsync(options))
        {
            Assert.True(node.TransactionIdentifiers.TxnId >= lostTxnId + LocalCommandLog.UnflushedIdentifiersMax - 1, $"transaction ids restart at {node.TransactionIdentifiers.TxnId}, the lost grant's was {lostTxnId}");

            // The lost grant's transaction does not exist: its commit fails, nothing is written.
            var commit = await Assert.ThrowsAsync<EtcdException>(() => node.TxnCommitAsync(new CommitRequest { TxnId = lostTxnId, Writes = { new RequestOp { RequestPut = new PutRequest { Key = B("a"), Value = B("lost") } } } }));
            Assert.Equal(TransactionError.Types.Kind.UnknownTransaction, commit.Error.Transaction?.Kind);

            var lease = (await node.LeaseGrantAsync(new LeaseGrantRequest { TTL = 600 })).ID;
            var next = await node.TxnBeginAsync(BeginLocking(lease, "a"));
            Assert.True(next.TxnId > lostTxnId, $"transaction id {next.TxnId} handed out again (the lost grant's was {lostTxnId})");
            Assert.True(Assert.Single(next.FencingTokens) > lostToken, $"fencing token {next.FencingTokens[0]} not above the lost grant's {lostToken}");
            Assert.Empty((await node.RangeAsync(new RangeRequest { Key = B("a") })).Kvs);
        }
    }

    [Fact]
    public async Task A_lock_table_never_used_stays_empty_across_restarts()
    {
        var options = new NodeOptions { DataDirectory = _directory };
        for (var run = 0; run < 2; run++)
        {
            await using var node = await ArbiterNode.StartAsync(options);
            await node.PutAsync(new PutRequest { Key = B("k"), Value = B("v") });
            Assert.Equal(default, node.TransactionIdentifiers);
        }
    }

    private static void CopyDirectory(string source, string destination)
    {
        foreach (var directory in Directory.GetDirectories(source, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(directory.Replace(source, destination, StringComparison.Ordinal));
        }

        Directory.CreateDirectory(destination);
        // The LOCK files are held exclusively by the running node (and recreated by the next).
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) != "LOCK"))
        {
            File.Copy(file, file.Replace(source, destination, StringComparison.Ordinal));
        }
    }

    public void Dispose()
    {
        foreach (var path in new[] { _directory, _directory + "-durable" })
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
    }
}
