using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Arbiter.Client;
using Arbiter.Recipes.Transactions;
using Npgsql;

namespace Arbiter.Bench.Transactions;

/// <summary>
/// <c>arbiter-bench transactions</c>: bank transfers (two accounts, read both, write both, commit)
/// for every family × account set × client count, each cell a fixed measured window after a short
/// warm-up; then the deadlock-detection latency on Arbiter. Writes <c>results.json</c>,
/// <c>results.md</c> and the charts into <c>--out</c>. bench/transactions.sh starts the servers.
/// </summary>
public static class TransactionBench
{
    /// <summary>Usage of the command.</summary>
    public const string Usage = """
        arbiter-bench transactions --arbiter URL --etcd URL --postgres CONNSTRING --out DIR
            [--duration-s 10] [--warmup-s 1] [--global-warmup-s 20] [--clients 1,16,64] [--accounts 10000,8]
            [--families pessimistic,optimistic,stm,etcd-stm,postgres; any Arbiter family with -unary: session off] [--deadlock-rounds 100]
        """;

    /// <summary>Usage of the report-only command.</summary>
    public const string ReportUsage = "arbiter-bench transactions-report --in DIR   (results.md and the charts again from DIR/results.json)";

    private const long Initial = 1_000_000;

    /// <summary>Writes results.md and the charts again from a run's results.json.</summary>
    public static async Task<int> ReportAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        var directory = Value(args ?? [], "--in") ?? throw new ArgumentException("--in is required");
        var run = JsonSerializer.Deserialize<TransactionRun>(await File.ReadAllTextAsync(Path.Combine(directory, "results.json"), cancellationToken).ConfigureAwait(false), BenchCli.JsonOptions)
            ?? throw new ArgumentException($"{directory}/results.json is empty");
        await File.WriteAllTextAsync(Path.Combine(directory, "results.md"), TransactionReport.Markdown(run), cancellationToken).ConfigureAwait(false);
        TransactionReport.WriteCharts(run, directory);
        await output.WriteLineAsync($"wrote {directory}/results.md, throughput.png, retries.png").ConfigureAwait(false);
        return 0;
    }

    /// <summary>Runs the command; 0 when every cell ran and every total was conserved.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        var arbiter = Value(args, "--arbiter") ?? throw new ArgumentException("--arbiter is required");
        var etcd = Value(args, "--etcd") ?? "";
        var postgresConnection = Value(args, "--postgres");
        var outDirectory = Value(args, "--out") ?? throw new ArgumentException("--out is required");
        var durationS = double.Parse(Value(args, "--duration-s") ?? "10", CultureInfo.InvariantCulture);
        var warmupS = double.Parse(Value(args, "--warmup-s") ?? "1", CultureInfo.InvariantCulture);
        var globalWarmupS = double.Parse(Value(args, "--global-warmup-s") ?? "20", CultureInfo.InvariantCulture);
        var clientCounts = Ints(Value(args, "--clients") ?? "1,16,64");
        var accountSets = Ints(Value(args, "--accounts") ?? "10000,8");
        var families = (Value(args, "--families") ?? string.Join(",", BankFamilies.All)).Split(',', StringSplitOptions.RemoveEmptyEntries);
        var deadlockRounds = int.Parse(Value(args, "--deadlock-rounds") ?? "100", CultureInfo.InvariantCulture);
        Directory.CreateDirectory(outDirectory);

        await using var postgres = postgresConnection is null ? null : NpgsqlDataSource.Create(postgresConnection);
        var run = new TransactionRun { StartedUtc = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture), LoadAverageStart = LoadAverage(), DurationS = durationS };
        var failed = false;
        foreach (var accounts in accountSets)
        {
            await output.WriteLineAsync($"seeding {accounts} accounts").ConfigureAwait(false);
            await BankFamilies.SeedKvAsync(arbiter, accounts, Initial, cancellationToken).ConfigureAwait(false);
            if (families.Contains(BankFamilies.EtcdStm))
            {
                await BankFamilies.SeedKvAsync(etcd, accounts, Initial, cancellationToken).ConfigureAwait(false);
            }

            if (postgres is not null && families.Contains(BankFamilies.Postgres))
            {
                await BankFamilies.SeedPostgresAsync(postgres, accounts, Initial, cancellationToken).ConfigureAwait(false);
            }

            if (globalWarmupS > 0 && accounts == accountSets[0])
            {
                await WarmUpAsync(families, accounts, arbiter, etcd, postgres, globalWarmupS, output, cancellationToken).ConfigureAwait(false);
            }

            foreach (var clients in clientCounts)
            {
                foreach (var family in families)
                {
                    var cell = await RunCellAsync(family, accounts, clients, arbiter, etcd, postgres, durationS, warmupS, cancellationToken).ConfigureAwait(false);
                    run.Cells.Add(cell);
                    failed |= cell.Errors > 0;
                    await output.WriteLineAsync(Line(cell)).ConfigureAwait(false);
                }
            }

            // Money is conserved in every system after all its cells.
            var totals = new Dictionary<string, long> { ["arbiter"] = await BankFamilies.TotalKvAsync(arbiter, accounts, cancellationToken).ConfigureAwait(false) };
            if (families.Contains(BankFamilies.EtcdStm))
            {
                totals["etcd"] = await BankFamilies.TotalKvAsync(etcd, accounts, cancellationToken).ConfigureAwait(false);
            }

            if (postgres is not null && families.Contains(BankFamilies.Postgres))
            {
                totals["postgres"] = await BankFamilies.TotalPostgresAsync(postgres, accounts, cancellationToken).ConfigureAwait(false);
            }

            foreach (var (system, total) in totals)
            {
                var conserved = total == accounts * Initial;
                run.Totals.Add(new TotalCheck { System = system, Accounts = accounts, Expected = accounts * Initial, Actual = total });
                failed |= !conserved;
                await output.WriteLineAsync($"  {system}: total {total} over {accounts} accounts ({(conserved ? "conserved" : "NOT CONSERVED")})").ConfigureAwait(false);
            }
        }

        if (deadlockRounds > 0)
        {
            run.Deadlock = await DeadlockLatency.MeasureAsync(arbiter, deadlockRounds, output, cancellationToken).ConfigureAwait(false);
        }

        run.LoadAverageEnd = LoadAverage();
        await File.WriteAllTextAsync(Path.Combine(outDirectory, "results.json"), JsonSerializer.Serialize(run, BenchCli.JsonOptions), cancellationToken).ConfigureAwait(false);
        await File.WriteAllTextAsync(Path.Combine(outDirectory, "results.md"), TransactionReport.Markdown(run), cancellationToken).ConfigureAwait(false);
        TransactionReport.WriteCharts(run, outDirectory);
        await output.WriteLineAsync($"wrote {outDirectory}/results.json, results.md, throughput.png, retries.png").ConfigureAwait(false);
        return failed ? 1 : 0;
    }

    /// <summary>
    /// Runs every family, unmeasured, at 1 and at 16 clients for <paramref name="seconds"/> in all,
    /// before the first measured cell: a server that has just started (Arbiter's JIT tiers up over
    /// its first seconds of load; PostgreSQL's and etcd's caches fill) is not the steady state a
    /// long-running service is in, and the first family measured would otherwise pay for it alone.
    /// </summary>
    private static async Task WarmUpAsync(IReadOnlyList<string> families, int accounts, string arbiter, string etcd, NpgsqlDataSource? postgres, double seconds, TextWriter output, CancellationToken cancellationToken)
    {
        var distinct = families.Distinct().ToList();
        var perRunS = seconds / (2 * distinct.Count);
        await output.WriteLineAsync($"global warm-up: {seconds:F0} s over {string.Join(", ", distinct)} at 1 and 16 clients (not measured)").ConfigureAwait(false);
        foreach (var clients in new[] { 1, 16 })
        {
            foreach (var family in distinct)
            {
                await RunCellAsync(family, accounts, clients, arbiter, etcd, postgres, perRunS, 0, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One cell: <paramref name="clients"/> closed-loop clients of <paramref name="family"/> over <paramref name="accounts"/> accounts.</summary>
    private static async Task<BankCell> RunCellAsync(string family, int accounts, int clients, string arbiter, string etcd, NpgsqlDataSource? postgres, double durationS, double warmupS, CancellationToken cancellationToken)
    {
        var measurement = new Measurement();
        var bankClients = Enumerable.Range(0, clients).Select(_ => BankFamilies.Create(family, accounts, arbiter, etcd, postgres)).ToList();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        long retriesAtStart = 0, deadlocksAtStart = 0;
        var loops = bankClients.Select((client, index) => Task.Run(async () =>
        {
            var random = new Random(index * 7919 + accounts);
            while (!stop.IsCancellationRequested)
            {
                var from = random.Next(accounts);
                var to = (from + 1 + random.Next(accounts - 1)) % accounts;
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await client.TransferAsync(from, to, random.Next(1, 100), stop.Token).ConfigureAwait(false);
                    measurement.RecordSuccess(Stopwatch.GetTimestamp() - started);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
                {
                    measurement.RecordError(e);
                    await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
                }
            }
        })).ToList();

        await Task.Delay(TimeSpan.FromSeconds(warmupS), cancellationToken).ConfigureAwait(false);
        retriesAtStart = bankClients.Sum(c => c.Retries);
        deadlocksAtStart = bankClients.Sum(c => c.Deadlocks);
        var window = Stopwatch.StartNew();
        measurement.Recording = true;
        await Task.Delay(TimeSpan.FromSeconds(durationS), cancellationToken).ConfigureAwait(false);
        measurement.Recording = false;
        var elapsedS = window.Elapsed.TotalSeconds;
        var retries = bankClients.Sum(c => c.Retries) - retriesAtStart;
        var deadlocks = bankClients.Sum(c => c.Deadlocks) - deadlocksAtStart;
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(loops).ConfigureAwait(false);
        foreach (var client in bankClients)
        {
            await client.DisposeAsync().ConfigureAwait(false);
        }

        var commits = measurement.Ops;
        return new BankCell
        {
            Family = family,
            Accounts = accounts,
            Clients = clients,
            Commits = commits,
            CommitsPerSecond = Math.Round(commits / elapsedS, 1),
            LatencyMs = LatencySummary.From(measurement.Histogram),
            Retries = retries,
            RetriesPerCommit = commits == 0 ? 0 : Math.Round((double)retries / commits, 3),
            Deadlocks = deadlocks,
            Errors = measurement.ErrorCount,
            ErrorKinds = new Dictionary<string, long>(measurement.Errors),
            LoadAverage = LoadAverage(),
        };
    }

    internal static string Line(BankCell c) => FormattableString.Invariant(
        $"{c.Family,-12} accounts={c.Accounts,-6} clients={c.Clients,-3} {c.CommitsPerSecond,9:F1} commits/s  p50={c.LatencyMs.P50:F2} p99={c.LatencyMs.P99:F2} ms  retries/commit={c.RetriesPerCommit:F3} deadlocks={c.Deadlocks} errors={c.Errors}{(c.ErrorKinds.Count == 0 ? "" : " (" + string.Join(", ", c.ErrorKinds.Select(e => $"{e.Key}={e.Value}")) + ")")}  load={c.LoadAverage}");

    internal static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static int[] Ints(string text) => [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))];

    private static string? Value(IReadOnlyList<string> args, string name)
    {
        for (var i = 0; i + 1 < args.Count; i++)
        {
            if (args[i] == name)
            {
                return args[i + 1];
            }
        }

        return null;
    }
}

/// <summary>Deadlock-detection latency on Arbiter: from the request that closes a cycle to the victim's answer.</summary>
public static class DeadlockLatency
{
    /// <summary>
    /// Rounds of a two-transaction cycle on fresh keys, alternating two shapes: the youngest closes
    /// the cycle (its own Lock call is answered with the deadlock), and the oldest closes it (the
    /// youngest, already waiting, is answered). Measured from sending the closing Lock to the
    /// victim's <see cref="DeadlockException"/>; the first waiter is seen queued (Status) before.
    /// </summary>
    public static async Task<DeadlockResult> MeasureAsync(string endpoint, int rounds, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        await using var client = ArbiterClient.Connect(endpoint);
        await using var txns = new TransactionClient(client);
        var closerIsVictim = new Measurement { Recording = true };
        var waiterIsVictim = new Measurement { Recording = true };
        var prefix = $"deadlock-{DateTime.UtcNow.Ticks}/";
        for (var round = 0; round < rounds; round++)
        {
            var (a, b) = ($"{prefix}{round}/a", $"{prefix}{round}/b");
            await using var older = await txns.BeginTransactionAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await using var younger = await txns.BeginTransactionAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            await older.LockExclusiveAsync(a, cancellationToken: cancellationToken).ConfigureAwait(false);
            await younger.LockExclusiveAsync(b, cancellationToken: cancellationToken).ConfigureAwait(false);
            var youngerCloses = round % 2 == 0;
            var (first, second) = youngerCloses ? (older, younger) : (younger, older);
            var waiting = first.LockExclusiveAsync(first == older ? b : a, cancellationToken: cancellationToken);
            while (!(await txns.StatusAsync(cancellationToken).ConfigureAwait(false)).Transactions.Any(t => t.TxnId == first.Id && t.WaitsFor.Count > 0))
            {
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }

            var started = Stopwatch.GetTimestamp();
            var closing = second.LockExclusiveAsync(second == older ? b : a, cancellationToken: cancellationToken);
            var victimCall = youngerCloses ? closing : waiting;
            try
            {
                await victimCall.ConfigureAwait(false);
                throw new InvalidOperationException($"round {round}: the youngest transaction was granted instead of chosen as the deadlock victim");
            }
            catch (DeadlockException)
            {
                (youngerCloses ? closerIsVictim : waiterIsVictim).RecordSuccess(Stopwatch.GetTimestamp() - started);
            }

            await (youngerCloses ? waiting : closing).ConfigureAwait(false);   // the older one gets its lock
        }

        var result = new DeadlockResult
        {
            Rounds = rounds,
            CloserIsVictimMs = LatencySummary.From(closerIsVictim.Histogram),
            WaiterIsVictimMs = LatencySummary.From(waiterIsVictim.Histogram),
        };
        await output.WriteLineAsync(FormattableString.Invariant(
            $"deadlock detection ({rounds} rounds): closer is victim p50={result.CloserIsVictimMs.P50:F2} p99={result.CloserIsVictimMs.P99:F2} ms; waiter is victim p50={result.WaiterIsVictimMs.P50:F2} p99={result.WaiterIsVictimMs.P99:F2} ms")).ConfigureAwait(false);
        return result;
    }
}

/// <summary>The whole run, as written to results.json.</summary>
public sealed record TransactionRun
{
    /// <summary>Start (UTC, ISO 8601).</summary>
    public string StartedUtc { get; init; } = "";

    /// <summary>Measured window per cell, seconds.</summary>
    public double DurationS { get; init; }

    /// <summary>/proc/loadavg (1, 5, 15 min) at the start.</summary>
    public string LoadAverageStart { get; init; } = "";

    /// <summary>/proc/loadavg at the end.</summary>
    public string LoadAverageEnd { get; set; } = "";

    /// <summary>Every cell, in run order.</summary>
    public List<BankCell> Cells { get; init; } = [];

    /// <summary>The conservation check of each system and account set.</summary>
    public List<TotalCheck> Totals { get; init; } = [];

    /// <summary>Deadlock-detection latency, if measured.</summary>
    public DeadlockResult? Deadlock { get; set; }
}

/// <summary>One family × account set × client count.</summary>
public sealed record BankCell
{
    /// <summary>pessimistic, optimistic, stm, etcd-stm or postgres.</summary>
    public string Family { get; init; } = "";

    /// <summary>Accounts transfers pick from (8: a hotspot; 10 000: rare conflicts).</summary>
    public int Accounts { get; init; }

    /// <summary>Concurrent closed-loop clients.</summary>
    public int Clients { get; init; }

    /// <summary>Committed transfers in the window.</summary>
    public long Commits { get; init; }

    /// <summary>Committed transfers per second.</summary>
    public double CommitsPerSecond { get; init; }

    /// <summary>Latency of a whole transfer, retries included.</summary>
    public LatencySummary LatencyMs { get; init; } = new();

    /// <summary>Failed attempts that were retried (conflicts, deadlock victims).</summary>
    public long Retries { get; init; }

    /// <summary>Retries per committed transfer.</summary>
    public double RetriesPerCommit { get; init; }

    /// <summary>Deadlock victims.</summary>
    public long Deadlocks { get; init; }

    /// <summary>Transfers that failed (not retried).</summary>
    public long Errors { get; init; }

    /// <summary>Errors by kind.</summary>
    public Dictionary<string, long> ErrorKinds { get; init; } = [];

    /// <summary>/proc/loadavg at the end of the cell.</summary>
    public string LoadAverage { get; init; } = "";
}

/// <summary>The sum of the balances after the cells of one account set.</summary>
public sealed record TotalCheck
{
    /// <summary>arbiter, etcd or postgres.</summary>
    public string System { get; init; } = "";

    /// <summary>The account set.</summary>
    public int Accounts { get; init; }

    /// <summary>accounts × the initial balance.</summary>
    public long Expected { get; init; }

    /// <summary>What the system holds.</summary>
    public long Actual { get; init; }
}

/// <summary>Deadlock-detection latency.</summary>
public sealed record DeadlockResult
{
    /// <summary>Cycles formed (half of each shape).</summary>
    public int Rounds { get; init; }

    /// <summary>The youngest closes the cycle and is answered with the deadlock on its own Lock call.</summary>
    public LatencySummary CloserIsVictimMs { get; init; } = new();

    /// <summary>The oldest closes the cycle; the youngest, already waiting, is answered.</summary>
    public LatencySummary WaiterIsVictimMs { get; init; } = new();
}
