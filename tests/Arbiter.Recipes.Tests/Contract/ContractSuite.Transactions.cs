using Arbiter.Client;
using Arbiter.Recipes.Transactions;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Recipes.Tests.Contract;

/// <summary>Transactions SDK: STM (etcd's four isolation levels), CAS updates, pessimistic and optimistic transactions, snapshots.</summary>
public abstract partial class ContractSuite
{
    private bool IsEtcd => Backend.Name == "etcd";

    private TransactionClient NewTransactions() => new(NewClient(), new TransactionClientOptions { SessionTtl = TimeSpan.FromSeconds(5) });

    [Theory]
    [InlineData(StmIsolation.SerializableSnapshot, 2)]
    [InlineData(StmIsolation.Serializable, 2)]
    [InlineData(StmIsolation.RepeatableReads, 2)]
    [InlineData(StmIsolation.ReadCommitted, 1)]
    public async Task Stm_read_modify_write_with_a_concurrent_write_retries_except_under_read_committed(StmIsolation isolation, int attemptsExpected)
    {
        await using var txns = NewTransactions();
        var other = NewClient();
        var key = Prefix + "counter";
        await other.PutAsync(key, "10");
        var attempts = 0;
        await txns.AtomicallyAsync(
            async (stm, ct) =>
            {
                attempts++;
                var value = int.Parse(await stm.GetAsync(key, ct), System.Globalization.CultureInfo.InvariantCulture);
                if (attempts == 1)
                {
                    await other.PutAsync(key, "100", cancellationToken: ct);   // lands between the read and the commit
                }

                stm.Put(key, (value + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            },
            isolation).Within();

        Assert.Equal(attemptsExpected, attempts);
        // Under ReadCommitted the concurrent write is lost (etcd's semantics); otherwise it is seen.
        Assert.Equal(isolation == StmIsolation.ReadCommitted ? "11" : "101", await other.GetStringAsync(key));
    }

    [Theory]
    [InlineData(StmIsolation.SerializableSnapshot, 2)]
    [InlineData(StmIsolation.Serializable, 1)]
    public async Task Stm_serializable_snapshot_also_checks_blind_writes(StmIsolation isolation, int attemptsExpected)
    {
        await using var txns = NewTransactions();
        var other = NewClient();
        await other.PutAsync(Prefix + "x", "1");
        var attempts = 0;
        await txns.AtomicallyAsync(
            async (stm, ct) =>
            {
                attempts++;
                await stm.GetAsync(Prefix + "x", ct);
                if (attempts == 1)
                {
                    await other.PutAsync(Prefix + "y", "other", cancellationToken: ct);   // y is written, never read, by the STM
                }

                stm.Put(Prefix + "y", "stm");
            },
            isolation).Within();

        Assert.Equal(attemptsExpected, attempts);
        Assert.Equal("stm", await other.GetStringAsync(Prefix + "y"));
    }

    [Fact]
    public async Task Stm_serializable_reads_all_see_the_first_reads_revision()
    {
        await using var txns = NewTransactions();
        var other = NewClient();
        await other.PutAsync(Prefix + "a", "a1");
        await other.PutAsync(Prefix + "b", "b1");
        var attempts = new List<List<string>>();
        await txns.AtomicallyAsync(
            async (stm, ct) =>
            {
                var seen = new List<string> { await stm.GetAsync(Prefix + "a", ct) };
                attempts.Add(seen);
                if (attempts.Count == 1)
                {
                    await other.PutAsync(Prefix + "b", "b2", cancellationToken: ct);
                }

                seen.Add(await stm.GetAsync(Prefix + "b", ct));
            },
            StmIsolation.Serializable).Within();

        // Pinned at the first read: b is read as it was then, though it changed before the read;
        // the commit then finds b changed, and the second attempt sees the new value.
        Assert.Equal(["a1", "b1"], attempts[0]);
        Assert.Equal(["a1", "b2"], attempts[^1]);
        Assert.Equal(2, attempts.Count);
    }

    [Fact]
    public async Task Stm_range_read_is_phantom_safe()
    {
        await using var txns = NewTransactions();
        var other = NewClient();
        await other.PutAsync(Prefix + "r/1", "1");
        var attempts = 0;
        var counted = 0;
        await txns.AtomicallyAsync(
            async (stm, ct) =>
            {
                attempts++;
                counted = (await stm.RangeAsync(Prefix + "r/", Prefix + "r0", ct)).Count;
                if (attempts == 1)
                {
                    await other.PutAsync(Prefix + "r/2", "2", cancellationToken: ct);   // an insert into the range read
                }

                stm.Put(Prefix + "count", counted.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }).Within();

        Assert.Equal(2, attempts);
        Assert.Equal("2", await other.GetStringAsync(Prefix + "count"));
    }

    [Fact]
    public async Task UpdateAsync_concurrent_increments_lose_nothing()
    {
        await using var txns = NewTransactions();
        var key = Prefix + "n";
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 8; i++)
            {
                await txns.UpdateAsync(key, v => ((v is null ? 0 : int.Parse(v, System.Globalization.CultureInfo.InvariantCulture)) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }));
        await Task.WhenAll(workers).Within();
        Assert.Equal("32", await NewClient().GetStringAsync(key));
    }

    [Fact]
    public async Task Optimistic_transaction_conflicts_on_an_insert_into_its_read_range()
    {
        await using var txns = NewTransactions();
        var other = NewClient();
        await other.PutAsync(Prefix + "o/1", "1");
        await using var txn = await txns.BeginTransactionAsync(new TransactionOptions { Mode = TransactionMode.Optimistic });
        var rows = await txn.RangePrefixAsync(Prefix + "o/");
        Assert.Single(rows);
        txn.Put(Prefix + "sum", "1");
        await other.PutAsync(Prefix + "o/2", "2");
        var e = await Assert.ThrowsAsync<ConflictException>(() => txn.CommitAsync()).Within();
        if (!IsEtcd)
        {
            Assert.Equal(Prefix + "o/2", e.Key.ToStringUtf8());
            Assert.True(e.Revision > txn.ReadRevision);
        }

        Assert.Null(await other.GetStringAsync(Prefix + "sum"));
    }

    [Fact]
    public async Task Pessimistic_deadlock_pair_names_the_cycle_and_run_transaction_retries_it()
    {
        await using var txns = NewTransactions();
        if (IsEtcd)
        {
            var e = await Assert.ThrowsAsync<NotSupportedException>(() => txns.BeginTransactionAsync());
            Assert.Contains("Pessimistic transactions", e.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<NotSupportedException>(() => txns.OpenSnapshotAsync());
            return;
        }

        string a = Prefix + "A", b = Prefix + "B";
        await using var older = await txns.BeginTransactionAsync();
        await using var younger = await txns.BeginTransactionAsync();
        await older.LockExclusiveAsync(a);
        await younger.LockExclusiveAsync(b);
        var olderWaits = older.LockExclusiveAsync(b);
        await TestSupport.EventuallyAsync(async () => (await txns.StatusAsync()).Transactions.Any(t => t.TxnId == older.Id && t.WaitsFor.Contains(younger.Id)), TestSupport.Deadline, "the older transaction to wait");
        var deadlock = await Assert.ThrowsAsync<DeadlockException>(() => younger.LockExclusiveAsync(a)).Within();
        Assert.Equal(younger.Id, deadlock.TransactionId);
        Assert.Equal([younger.Id, older.Id], deadlock.Cycle.Select(c => c.TransactionId));
        Assert.Equal([a, b], deadlock.Cycle.Select(c => c.Key.ToStringUtf8()));
        Assert.True(await olderWaits.Within() > 0);
        older.Put(a, "from-older");
        await older.CommitAsync();

        // Opposite-order transfers in a retry loop: every deadlock is broken and retried, nothing lost.
        await using var client = NewClient();
        await client.PutAsync(a, "100");
        await client.PutAsync(b, "100");
        async Task Transfer(string from, string to)
        {
            for (var i = 0; i < 6; i++)
            {
                await txns.RunTransactionAsync(async (t, ct) =>
                {
                    await t.LockExclusiveAsync(from, cancellationToken: ct);
                    await Task.Delay(5, ct);
                    await t.LockExclusiveAsync(to, cancellationToken: ct);
                    var x = int.Parse((await t.GetAsync(from, ct))!, System.Globalization.CultureInfo.InvariantCulture);
                    var y = int.Parse((await t.GetAsync(to, ct))!, System.Globalization.CultureInfo.InvariantCulture);
                    t.Put(from, (x - 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
                    t.Put(to, (y + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
                });
            }
        }

        await Task.WhenAll(Transfer(a, b), Transfer(b, a)).Within(TimeSpan.FromSeconds(120));
        Assert.Equal(200, int.Parse((await client.GetStringAsync(a))!, System.Globalization.CultureInfo.InvariantCulture) + int.Parse((await client.GetStringAsync(b))!, System.Globalization.CultureInfo.InvariantCulture));
        Output.WriteLine($"deadlocks {txns.Metrics.Deadlocks}, retries {txns.Metrics.Retries}, commits {txns.Metrics.Commits}");
        var status = await txns.StatusAsync();
        Assert.DoesNotContain(status.Locks, l => l.Key.ToStringUtf8().StartsWith(Prefix, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Several_keys_locked_in_one_call_wait_for_a_held_one_and_begin_can_carry_locks()
    {
        await using var txns = NewTransactions();
        string a = Prefix + "A", b = Prefix + "B", c = Prefix + "C";
        if (IsEtcd)
        {
            var e = await Assert.ThrowsAsync<NotSupportedException>(() => txns.BeginTransactionAsync(new TransactionOptions { Locks = [Protocol.Transactions.LockTarget.Exclusive(a)] }));
            Assert.Contains("Pessimistic transactions", e.Message, StringComparison.Ordinal);
            return;
        }

        // Three keys in one call; the middle one is held by another transaction.
        await using var holder = await txns.BeginTransactionAsync();
        await holder.LockExclusiveAsync(b);
        await using var t = await txns.BeginTransactionAsync();
        var locking = t.LockExclusiveAsync([a, b, c]);
        await TestSupport.EventuallyAsync(async () => (await txns.StatusAsync()).Transactions.Any(x => x.TxnId == t.Id && x.WaitsFor.Contains(holder.Id)), TestSupport.Deadline, "the multi-key lock to wait for the holder");
        var status = await txns.StatusAsync();
        Assert.Contains(status.Locks, l => l.TxnId == t.Id && l.Granted && l.Key.ToStringUtf8() == a);
        Assert.DoesNotContain(status.Locks, l => l.TxnId == t.Id && l.Key.ToStringUtf8() == c);   // not tried before b is granted
        Assert.False(locking.IsCompleted);
        holder.Put(b, "holder");
        await holder.CommitAsync();
        var tokens = await locking.Within();
        Assert.Equal(3, tokens.Count);
        Assert.True(tokens[0] < tokens[1] && tokens[1] < tokens[2], $"tokens {string.Join(",", tokens)}");
        Assert.Equal("holder", await t.GetAsync(b));
        t.Put(a, "t");
        t.Put(b, "t");
        t.Put(c, "t");
        await t.CommitAsync();

        // Begin carrying both locks: one command opens the transaction and takes them.
        await using (var first = await txns.BeginTransactionAsync(new TransactionOptions { Locks = [Protocol.Transactions.LockTarget.Exclusive(a), Protocol.Transactions.LockTarget.Exclusive(b)] }))
        {
            Assert.Equal(2, first.BeginFencingTokens.Count);
            Assert.True(first.BeginFencingTokens[1] > tokens[2]);

            // NOWAIT on a held key: Begin fails busy and leaves no transaction behind.
            var before = (await txns.StatusAsync()).Transactions.Count;
            await Assert.ThrowsAsync<LockBusyException>(() => txns.BeginTransactionAsync(new TransactionOptions
            {
                Locks = [Protocol.Transactions.LockTarget.Exclusive(c), Protocol.Transactions.LockTarget.Exclusive(b)],
                BeginLockOptions = new LockOptions { NoWait = true },
            }));
            Assert.Equal(before, (await txns.StatusAsync()).Transactions.Count);

            // A blocking Begin waits for b and returns once the first commits.
            var second = txns.BeginTransactionAsync(new TransactionOptions { Locks = [Protocol.Transactions.LockTarget.Exclusive(b), Protocol.Transactions.LockTarget.Exclusive(c)] });
            await TestSupport.EventuallyAsync(async () => (await txns.StatusAsync()).Transactions.Any(x => x.WaitsFor.Contains(first.Id)), TestSupport.Deadline, "the second Begin to wait");
            Assert.False(second.IsCompleted);
            first.Put(a, "first");
            first.Put(b, "first");
            await first.CommitAsync();
            await using var secondTxn = await second.Within();
            Assert.Equal(2, secondTxn.BeginFencingTokens.Count);
            Assert.Equal("first", await secondTxn.GetAsync(b));
            secondTxn.Put(c, "second");
            await secondTxn.CommitAsync();
        }

        // Bad input in the second key: refused, nothing taken.
        await using var bad = await txns.BeginTransactionAsync();
        var empty = await Assert.ThrowsAsync<RpcException>(() => bad.LockExclusiveAsync([Prefix + "k", ""]));
        Assert.Equal("etcdserver: key is not provided", empty.Status.Detail);
        Assert.DoesNotContain((await txns.StatusAsync()).Locks, l => l.TxnId == bad.Id);
        await bad.RollbackAsync();

        await using var client = NewClient();
        Assert.Equal("first", await client.GetStringAsync(a));
        Assert.Equal("second", await client.GetStringAsync(c));
        Assert.DoesNotContain((await txns.StatusAsync()).Locks, l => l.Key.ToStringUtf8().StartsWith(Prefix, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Locked_keys_come_back_with_their_grant_so_reading_them_needs_no_round_trip()
    {
        if (IsEtcd)
        {
            return;   // Begin carrying locks is refused on etcd (checked above); explicit locks too.
        }

        await using var txns = NewTransactions();
        await using var client = NewClient();
        string a = Prefix + "A", absent = Prefix + "B", c = Prefix + "C", d = Prefix + "D", range = Prefix + "R/";
        await client.PutAsync(a, "a0");
        await client.PutAsync(c, "c0");
        await client.PutAsync(d, "d0");
        await client.PutAsync(range + "1", "r0");

        // Locks are advisory to plain KV writes (docs/transactions.md), so a plain Put after the
        // grant shows where a read was answered: from the grant (the old value) or by the server.
        await using (var t = await txns.BeginTransactionAsync(new TransactionOptions { Locks = [Protocol.Transactions.LockTarget.Exclusive(a), Protocol.Transactions.LockTarget.Exclusive(absent)] }))
        {
            await client.PutAsync(a, "plain");
            await client.PutAsync(absent, "plain");
            Assert.Equal("a0", await t.GetAsync(a));
            Assert.Null(await t.GetAsync(absent));

            // An explicit lock call brings its key back too; a range lock does not (read as before).
            await t.LockSharedAsync(d);
            await t.LockExclusiveAsync(range, Prefix + "R0");
            await client.PutAsync(d, "plain");
            await client.PutAsync(range + "1", "plain");
            Assert.Equal("d0", await t.GetAsync(d));
            Assert.Equal("plain", await t.GetAsync(range + "1"));

            // The transaction's own writes still come first.
            t.Put(a, "mine");
            Assert.Equal("mine", await t.GetAsync(a));
            await t.RollbackAsync();
        }

        // Opted out: every read asks the server.
        await using var u = await txns.BeginTransactionAsync(new TransactionOptions { Locks = [Protocol.Transactions.LockTarget.Exclusive(c)], ReadLockedKeys = false });
        await client.PutAsync(c, "plain");
        Assert.Equal("plain", await u.GetAsync(c));
        await u.RollbackAsync();
    }

    [Fact]
    public async Task Snapshot_reads_one_revision_that_compaction_cannot_remove()
    {
        if (IsEtcd)
        {
            return;   // covered by the NotSupported check above
        }

        await using var txns = NewTransactions();
        var client = NewClient();
        await client.PutAsync(Prefix + "s", "1");
        await using (var snapshot = await txns.OpenSnapshotAsync())
        {
            await client.PutAsync(Prefix + "s", "2");
            Assert.Equal("1", await snapshot.GetAsync(Prefix + "s"));
            var revision = await client.GetRevisionAsync();
            var e = await Assert.ThrowsAsync<RpcException>(() => client.CompactAsync(revision));
            Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
            Assert.Contains("snapshot", e.Status.Detail, StringComparison.Ordinal);
        }

        await client.CompactAsync(await client.GetRevisionAsync());
    }

    [Fact]
    public async Task Bad_transaction_input_gets_clear_errors()
    {
        if (IsEtcd)
        {
            return;
        }

        await using var txns = NewTransactions();
        var raw = (ITransactionsClient)NewClient().Raw;
        var unknown = Assert.IsType<UnknownTransactionException>(await Typed(() => raw.TxnLockAsync(new Protocol.Transactions.LockRequest { TxnId = 987_654, Key = ByteString.CopyFromUtf8("k") })));
        Assert.Contains("987654", unknown.Message, StringComparison.Ordinal);
        await using var txn = await txns.BeginTransactionAsync();
        var inverted = await Assert.ThrowsAsync<RpcException>(() => txn.LockExclusiveAsync(Prefix + "b", Prefix + "a"));
        Assert.Equal(StatusCode.InvalidArgument, inverted.StatusCode);
        var empty = await Assert.ThrowsAsync<RpcException>(() => txn.LockExclusiveAsync(""));
        Assert.Equal("etcdserver: key is not provided", empty.Status.Detail);
        var absurd = await Assert.ThrowsAsync<RpcException>(() => txn.LockExclusiveAsync(Prefix + "k", options: new LockOptions { Timeout = TimeSpan.FromDays(3650) }));
        Assert.Contains("wait_timeout_ms", absurd.Status.Detail, StringComparison.Ordinal);
        await txn.RollbackAsync();
        var afterAbort = Assert.IsType<TransactionAbortedException>(await Typed(() => raw.TxnCommitAsync(new Protocol.Transactions.CommitRequest { TxnId = txn.Id })));
        Assert.Equal("rollback", afterAbort.Reason);
        Assert.True(await NewClient().GetRevisionAsync() > 0);   // the server is still up
    }

    /// <summary>The typed exception the SDK makes of a raw call's failure.</summary>
    private static async Task<Exception> Typed(Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            return TransactionException.FromRpc(e, "test") ?? e;
        }

        throw new Xunit.Sdk.XunitException("the call did not fail");
    }
}
