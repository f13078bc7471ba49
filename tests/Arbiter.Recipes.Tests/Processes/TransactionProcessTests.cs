using System.Globalization;
using Arbiter.Client;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Recipes.Tests.Backends;
using Arbiter.Recipes.Transactions;

namespace Arbiter.Recipes.Tests.Processes;

/// <summary>
/// Transactions across real OS processes against a real Arbiter server process: bank transfers
/// that deadlock on purpose, a holder killed with SIGKILL, a holder frozen with SIGSTOP.
/// </summary>
public sealed class TransactionProcessTests(ArbiterServerBackend backend, ITestOutputHelper output) : IClassFixture<ArbiterServerBackend>, IAsyncLifetime
{
    private readonly List<ManagedProcess> _children = [];
    private readonly string _prefix = $"t-{Guid.NewGuid().ToString("N")[..8]}/";
    private readonly ArbiterClient _client = backend.NewClient();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var child in _children)
        {
            output.WriteLine($"--- {child.DisplayName} ---\n{child.Log}");
            await child.DisposeAsync();
        }

        await _client.DisposeAsync();
    }

    [Theory]
    [InlineData("pessimistic")]
    [InlineData("optimistic")]
    public async Task Bank_transfers_across_processes_conserve_the_total_and_apply_once(string mode)
    {
        var seed = TestSupport.Seed(output);
        const int accounts = 4, workers = 3, transfers = 20, initial = 1000;
        for (var i = 0; i < accounts; i++)
        {
            await _client.PutAsync($"{_prefix}acct/{i}", initial.ToString(CultureInfo.InvariantCulture));
        }

        var children = Enumerable.Range(0, workers).Select(w => Start($"bank{w}", "bank", backend.Endpoint!, _prefix, accounts.ToString(CultureInfo.InvariantCulture),
            transfers.ToString(CultureInfo.InvariantCulture), $"w{w}", (seed + w).ToString(CultureInfo.InvariantCulture), mode)).ToList();
        long deadlocks = 0, retries = 0;
        foreach (var child in children)
        {
            var done = (await child.ExpectLineAsync("DONE", TimeSpan.FromSeconds(240))).Split(' ');
            Assert.Equal(transfers, long.Parse(done[1], CultureInfo.InvariantCulture));
            retries += long.Parse(done[2], CultureInfo.InvariantCulture);
            deadlocks += long.Parse(done[3], CultureInfo.InvariantCulture);
        }

        output.WriteLine($"{mode}: {workers * transfers} transfers, {retries} retries, {deadlocks} deadlocks broken");
        var balances = await _client.GetPrefixAsync(_prefix + "acct/");
        Assert.Equal(accounts * initial, balances.Sum(kv => long.Parse(kv.Value.ToStringUtf8(), CultureInfo.InvariantCulture)));
        var log = await _client.GetPrefixAsync(_prefix + "log/");
        Assert.Equal(workers * transfers, log.Count);
        Assert.All(log, kv => Assert.Equal(1, kv.Version));   // each transfer's record written exactly once

        await using var txns = new TransactionClient(_client);
        var status = await txns.StatusAsync();
        Assert.DoesNotContain(status.Locks, l => l.Key.ToStringUtf8().StartsWith(_prefix, StringComparison.Ordinal));
        Assert.All(status.Transactions, t => Assert.Empty(t.WaitsFor));   // no waiter left
    }

    [Fact]
    public async Task A_client_whose_own_session_vanished_on_the_server_begins_on_a_new_one()
    {
        await using var txns = new TransactionClient(_client);
        await using (var first = await txns.BeginTransactionAsync())
        {
            var lease = (await txns.StatusAsync()).Transactions.Single(t => t.TxnId == first.Id).Lease;

            // Behind the client's back (as an expiry its keep-alives did not see yet would): the lease is gone.
            await _client.RevokeLeaseAsync(lease);
            await using var second = await txns.BeginTransactionAsync();
            var secondLease = (await txns.StatusAsync()).Transactions.Single(t => t.TxnId == second.Id).Lease;
            Assert.NotEqual(lease, secondLease);
            await second.LockExclusiveAsync(_prefix + "after-lost-session");
            second.Put(_prefix + "after-lost-session", "ok");
            await second.CommitAsync();
        }

        Assert.Equal("ok", await _client.GetStringAsync(_prefix + "after-lost-session"));
    }

    [Fact]
    public async Task Holder_killed_with_sigkill_releases_its_locks_after_its_lease_ttl()
    {
        var key = _prefix + "held";
        var holder = Start("holder", "txn-hold", backend.Endpoint!, key, "2");
        var locked = (await holder.ExpectLineAsync("LOCKED")).Split(' ');
        var holderToken = long.Parse(locked[1], CultureInfo.InvariantCulture);

        await using var txns = new TransactionClient(_client);
        await using var txn = await txns.BeginTransactionAsync();
        await Assert.ThrowsAsync<LockBusyException>(() => txn.LockExclusiveAsync(key, options: new LockOptions { NoWait = true }));
        var waiting = txn.LockExclusiveAsync(key);
        await holder.KillAsync();
        var started = DateTime.UtcNow;
        var token = await waiting.Within();
        output.WriteLine($"granted {(DateTime.UtcNow - started).TotalMilliseconds:F0} ms after SIGKILL");
        Assert.True(token > holderToken);
        txn.Put(key, "successor");
        await txn.CommitAsync();
        Assert.Equal("successor", await _client.GetStringAsync(key));
    }

    [Fact]
    public async Task Holder_frozen_past_its_lease_cannot_commit_after_it_resumes()
    {
        var key = _prefix + "frozen";
        var holder = Start("frozen", "txn-hold", backend.Endpoint!, key, "2");
        var txnId = long.Parse((await holder.ExpectLineAsync("LOCKED")).Split(' ')[2], CultureInfo.InvariantCulture);
        holder.Signal("STOP");
        try
        {
            await using var txns = new TransactionClient(_client);
            await TestSupport.EventuallyAsync(async () => !(await txns.StatusAsync()).Transactions.Any(t => t.TxnId == txnId), TestSupport.Deadline, "the frozen holder's transaction to end with its lease");
            await txns.RunTransactionAsync(async (t, ct) =>
            {
                await t.LockExclusiveAsync(key, cancellationToken: ct);
                t.Put(key, "successor");
            }).Within();

            holder.Signal("CONT");
            await holder.WriteStdinAndCloseAsync(string.Empty);
            var commit = await holder.ExpectLineAsync("COMMIT");
            Assert.StartsWith("COMMIT failed TransactionAbortedException", commit, StringComparison.Ordinal);
            Assert.Contains("lease expired", commit, StringComparison.Ordinal);
            Assert.Equal("successor", await _client.GetStringAsync(key));
        }
        finally
        {
            holder.Signal("CONT");
        }
    }

    private ManagedProcess Start(string name, params string[] arguments)
    {
        var child = HostProcess.Start(name, arguments);
        _children.Add(child);
        return child;
    }
}
