using System.Diagnostics;
using System.Text.Json;
using Arbiter.Client;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Recipes.Tests.Backends;
using Arbiter.Recipes.Transactions;

namespace Arbiter.Recipes.Tests.Processes;

/// <summary>
/// <c>arbiter transactions</c> (a real CLI process) against a real <c>arbiter serve</c> process:
/// a transaction holding a lock and another waiting for it show up in the JSON output with the
/// wait-for edge between them, and in the table output.
/// </summary>
public sealed class TransactionsCliTests(ArbiterServerBackend backend, ITestOutputHelper output) : IClassFixture<ArbiterServerBackend>, IAsyncLifetime
{
    private readonly string _prefix = $"cli-{Guid.NewGuid().ToString("N")[..8]}/";
    private readonly ArbiterClient _client = backend.NewClient();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _client.DisposeAsync();

    [Fact]
    public async Task Cli_shows_the_holder_the_waiter_and_the_edge_between_them()
    {
        var key = _prefix + "acct/1";
        await using var txns = new TransactionClient(_client);
        await using var holder = await txns.BeginTransactionAsync();
        var token = await holder.LockExclusiveAsync(key);
        await using var waiter = await txns.BeginTransactionAsync();
        var waiting = waiter.LockExclusiveAsync(key);
        await TestSupport.EventuallyAsync(
            async () => (await txns.StatusAsync()).Transactions.Any(t => t.TxnId == waiter.Id && t.WaitsFor.Contains(holder.Id)),
            TestSupport.Deadline,
            "the waiter to queue behind the holder");

        var json = await RunCliAsync("transactions", "--endpoints", backend.Endpoint!, "--output", "json");
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var transactions = root.GetProperty("transactions").EnumerateArray().ToDictionary(t => t.GetProperty("id").GetInt64());

        var held = transactions[holder.Id];
        Assert.Equal("pessimistic", held.GetProperty("mode").GetString());
        Assert.Equal(1, held.GetProperty("locks_held").GetInt32());
        var heldLock = Assert.Single(held.GetProperty("locks").EnumerateArray());
        Assert.Equal(key, heldLock.GetProperty("key").GetString());
        Assert.Equal("X", heldLock.GetProperty("mode").GetString());
        Assert.Equal(token, heldLock.GetProperty("fencing_token").GetInt64());
        Assert.True(held.GetProperty("lease").GetInt64() != 0);
        Assert.True(held.GetProperty("open_ms").GetInt64() >= 0);
        Assert.True(held.GetProperty("lease_remaining_ms").GetInt64() > 0);
        Assert.Empty(held.GetProperty("waits_for").EnumerateArray());

        var waits = transactions[waiter.Id];
        Assert.Equal(0, waits.GetProperty("locks_held").GetInt32());
        Assert.Equal(key, waits.GetProperty("waiting_for_lock").GetProperty("key").GetString());
        Assert.Equal([holder.Id], waits.GetProperty("waits_for").EnumerateArray().Select(e => e.GetInt64()));

        var waiterEntry = Assert.Single(root.GetProperty("waiters").EnumerateArray(), w => w.GetProperty("txn_id").GetInt64() == waiter.Id);
        Assert.Equal(key, waiterEntry.GetProperty("key").GetString());
        Assert.False(waiterEntry.GetProperty("granted").GetBoolean());

        var edge = Assert.Single(root.GetProperty("edges").EnumerateArray(), e => e.GetProperty("waiter").GetInt64() == waiter.Id);
        Assert.Equal(holder.Id, edge.GetProperty("waits_for").GetInt64());
        Assert.Equal(key, edge.GetProperty("key").GetString());
        Assert.Equal("X", edge.GetProperty("mode").GetString());
        Assert.True(edge.GetProperty("blocker_holds").GetBoolean());

        var counters = root.GetProperty("counters");
        foreach (var name in new[] { "begun", "committed", "aborted", "deadlocks", "lock_timeouts", "lock_busy", "expired", "retried", "optimistic_conflicts" })
        {
            Assert.True(counters.TryGetProperty(name, out _), $"counter {name} missing");
        }

        Assert.True(counters.GetProperty("begun").GetInt64() >= 2);

        var table = await RunCliAsync("transactions", "--endpoints", backend.Endpoint!);
        Assert.Contains("Open transactions:", table, StringComparison.Ordinal);
        Assert.Contains("holds a conflicting lock", table, StringComparison.Ordinal);
        Assert.Contains(key, table, StringComparison.Ordinal);

        // Releasing the holder grants the waiter; the CLI then shows no edge for it.
        await holder.CommitAsync();
        Assert.True(await waiting.Within() > token);
        using var after = JsonDocument.Parse(await RunCliAsync("transactions", "--endpoints", backend.Endpoint!, "-w", "json"));
        Assert.DoesNotContain(after.RootElement.GetProperty("edges").EnumerateArray(), e => e.GetProperty("waiter").GetInt64() == waiter.Id);
    }

    [Fact]
    public async Task Cli_without_a_reachable_endpoint_says_so_and_fails()
    {
        var (code, stdout, stderr) = await RunAsync("transactions", "--endpoints", $"http://127.0.0.1:{PortAllocator.FreePort()}", "--timeout-ms", "3000");
        output.WriteLine(stderr);
        Assert.Equal(1, code);
        Assert.Empty(stdout);
        Assert.Contains("no endpoint answered", stderr, StringComparison.Ordinal);
    }

    private async Task<string> RunCliAsync(params string[] arguments)
    {
        var (code, stdout, stderr) = await RunAsync(arguments);
        output.WriteLine($"$ arbiter {string.Join(' ', arguments)}\n{stdout}{stderr}");
        Assert.True(code == 0, $"arbiter {string.Join(' ', arguments)} exited with {code}: {stderr}");
        return stdout;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(ArbiterProcess.DllPath);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"arbiter {string.Join(' ', arguments)} did not exit within 60 s");
        }

        return (process.ExitCode, await stdout, await stderr);
    }
}
