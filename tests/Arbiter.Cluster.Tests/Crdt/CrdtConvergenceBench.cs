using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Arbiter.Client;
using Arbiter.Client.Crdt;
using Arbiter.Cluster.Tests.Faults;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Cluster.Tests.Crdt;

/// <summary>
/// A benchmark, not a test (run by bench/crdt-convergence.sh, which sets ARBITER_BENCH_OUT; skipped
/// otherwise, and Soak so the default run leaves it out). On 3 real members:
/// (1) convergence after healing, over many partitions: each round isolates one member (1 | 2,
/// rotating) with iptables, updates a counter and a set on both sides, heals, and times until every
/// member reads the exact expected sum and union; p50/p99/max over the rounds.
/// (2) anti-entropy bytes per update for a counter and a set at 1 and 16 clients, from the members'
/// <c>arbiter_crdt_gossip_bytes_total</c> and <c>arbiter_crdt_updates_total</c> metrics.
/// Writes results.md and results.json to ARBITER_BENCH_OUT.
/// </summary>
public sealed partial class CrdtConvergenceBench(ITestOutputHelper output)
{
    private static readonly TimeSpan Converge = ClusterKit.ConvergeTimeout;
    private static readonly string[] Kinds = ["delta", "ack", "digest", "repair"];

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    [CrdtBenchFact]
    [Trait("Category", "Soak")]
    public async Task Convergence_after_partitions_and_gossip_bytes_per_update()
    {
        var outDir = Environment.GetEnvironmentVariable(CrdtBenchFactAttribute.OutVariable)!;

        var rounds = int.Parse(Environment.GetEnvironmentVariable("ARBITER_BENCH_ROUNDS") ?? "30", CultureInfo.InvariantCulture);
        var seedText = Environment.GetEnvironmentVariable("ARBITER_TEST_SEED");
        var seed = seedText is null ? Random.Shared.Next() : int.Parse(seedText, CultureInfo.InvariantCulture);
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed}); {rounds} rounds");
        var random = new Random(seed);
        Directory.CreateDirectory(outDir);

        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings { RunMembersAsSeparateUsers = true });
        var members = cluster.Running.ToList();
        await cluster.WaitForLeaderAsync(Converge);
        var clients = members.Select(m => new ArbiterClient(new GrpcArbiterClient(m.Endpoint))).ToList();
        try
        {
            var crdt = clients.Select(c => c.Crdt).ToList();
            var load = new List<double>();

            // (1) Convergence after healing, round by round.
            var convergenceMs = new List<double>();
            var expectedCount = 0L;
            var expectedElements = 0;
            for (var round = 0; round < rounds; round++)
            {
                var isolated = round % members.Count;
                var majority = Enumerable.Range(0, members.Count).Where(i => i != isolated).ToList();
                using (var partition = IptablesPartition.Isolate(members[isolated], majority.Select(i => members[i])))
                {
                    foreach (var side in new[] { isolated }.Concat(majority))
                    {
                        var increments = 1 + random.Next(5);
                        for (var n = 0; n < increments; n++)
                        {
                            await crdt[side].Counter("bench-likes").IncrementAsync();
                        }

                        await crdt[side].Set("bench-cart").AddAsync($"r{round}-m{side}");
                        expectedCount += increments;
                        expectedElements++;
                    }

                    partition.Heal();
                }

                var healed = Stopwatch.StartNew();
                while (true)
                {
                    var converged = true;
                    foreach (var client in crdt)
                    {
                        converged &= await client.Counter("bench-likes").GetAsync() == expectedCount
                            && (await client.Set("bench-cart").GetStringsAsync()).Count == expectedElements;
                    }

                    if (converged)
                    {
                        break;
                    }

                    Assert.True(healed.Elapsed < Converge, $"round {round}: no convergence within {Converge.TotalSeconds} s");
                    await Task.Delay(5);
                }

                convergenceMs.Add(healed.Elapsed.TotalMilliseconds);
                load.Add(LoadAverage());
                output.WriteLine($"round {round}: isolated {members[isolated].Name}, converged {healed.Elapsed.TotalMilliseconds:F0} ms after healing (load {load[^1]:F1})");
            }

            // (2) Gossip bytes per update (no partition).
            var cells = new List<GossipCell>();
            foreach (var type in new[] { "counter", "set" })
            {
                foreach (var clientCount in new[] { 1, 16 })
                {
                    cells.Add(await GossipCellAsync(members, crdt, type, clientCount, clientCount == 1 ? 500 : 1600));
                    load.Add(LoadAverage());
                }
            }

            var sorted = convergenceMs.Order().ToList();
            var summary = new
            {
                seed,
                rounds,
                convergenceMs = new { p50 = Percentile(sorted, 0.50), p99 = Percentile(sorted, 0.99), max = sorted[^1], min = sorted[0], all = convergenceMs },
                gossip = cells,
                loadAverageMin = load.Min(),
                loadAverageMax = load.Max(),
            };
            await File.WriteAllTextAsync(Path.Combine(outDir, "results.json"), JsonSerializer.Serialize(summary, Indented));
            await File.WriteAllTextAsync(Path.Combine(outDir, "results.md"), Markdown(seed, rounds, sorted, cells, load));
            output.WriteLine(await File.ReadAllTextAsync(Path.Combine(outDir, "results.md")));
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    /// <summary>One type at one client count: updates spread over the members, then until every member holds them all.</summary>
    public sealed record GossipCell(string Type, int Clients, long Updates, double Seconds, Dictionary<string, long> Bytes, double BytesPerUpdate);

    private async Task<GossipCell> GossipCellAsync(IReadOnlyList<ArbiterClusterMember> members, List<CrdtClient> crdt, string type, int clientCount, int updates)
    {
        var key = $"bench-{type}-{clientCount}";
        var before = await ScrapeAsync(members);
        var clock = Stopwatch.StartNew();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, clientCount).Select(c => Task.Run(async () =>
        {
            var client = crdt[c % crdt.Count];
            int i;
            while ((i = Interlocked.Increment(ref next)) < updates)
            {
                if (type == "counter")
                {
                    await client.Counter(key).IncrementAsync();
                }
                else
                {
                    await client.Set(key).AddAsync($"element-{i:D6}");
                }
            }
        })));
        await ClusterKit.WaitUntilAsync($"every member holds the {updates} updates of {key}", Converge, async () =>
        {
            foreach (var client in crdt)
            {
                var held = type == "counter" ? await client.Counter(key).GetAsync() : (await client.Set(key).GetStringsAsync()).Count;
                if (held != updates)
                {
                    return false;
                }
            }

            return true;
        });
        var seconds = clock.Elapsed.TotalSeconds;
        var after = await ScrapeAsync(members);
        var bytes = Kinds.ToDictionary(k => k, k => after.Bytes[k] - before.Bytes[k]);
        var applied = after.Updates - before.Updates;
        var cell = new GossipCell(type, clientCount, applied, Math.Round(seconds, 2), bytes, Math.Round(bytes.Values.Sum() / (double)Math.Max(1, applied), 1));
        output.WriteLine($"{type} at {clientCount} client(s): {applied} updates in {seconds:F1} s, {cell.BytesPerUpdate} bytes/update ({string.Join(", ", bytes.Select(b => $"{b.Key} {b.Value}"))})");
        return cell;
    }

    private static async Task<(Dictionary<string, long> Bytes, long Updates)> ScrapeAsync(IReadOnlyList<ArbiterClusterMember> members)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var bytes = Kinds.ToDictionary(k => k, _ => 0L);
        var updates = 0L;
        foreach (var member in members)
        {
            var text = await http.GetStringAsync(new Uri(new Uri(member.Endpoint), "/metrics"));
            foreach (var line in text.Split('\n'))
            {
                if (GossipLine().Match(line) is { Success: true } gossip)
                {
                    bytes[gossip.Groups[1].Value] += (long)double.Parse(gossip.Groups[2].Value, CultureInfo.InvariantCulture);
                }
                else if (UpdatesLine().Match(line) is { Success: true } update)
                {
                    updates += (long)double.Parse(update.Groups[1].Value, CultureInfo.InvariantCulture);
                }
            }
        }

        return (bytes, updates);
    }

    [GeneratedRegex("""^arbiter_crdt_gossip_bytes_total\{[^}]*kind="(\w+)"[^}]*\}\s+(\S+)""")]
    private static partial Regex GossipLine();

    [GeneratedRegex("""^arbiter_crdt_updates_total(?:\{[^}]*\})?\s+(\S+)""")]
    private static partial Regex UpdatesLine();

    private static double Percentile(List<double> sorted, double q) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];

    private static double LoadAverage() =>
        double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);

    private static string Markdown(int seed, int rounds, List<double> sorted, List<GossipCell> cells, List<double> load)
    {
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# CRDT convergence after partitions, and gossip bytes per update");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"3 members on one machine (2 cores shared with other builds; 1-minute load average {load.Min():F1}–{load.Max():F1} during the run), seed {seed}.");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"## Convergence after healing ({rounds} rounds)");
        md.AppendLine();
        md.AppendLine("Each round isolates one member with iptables (1 | 2, rotating), makes 1–5 increments and one set add on each member, heals, and times until every member reads the exact sum and union (local reads, polled every ~5 ms plus the reads' own time).");
        md.AppendLine();
        md.AppendLine("| rounds | min ms | p50 ms | p99 ms | max ms |");
        md.AppendLine("|---:|---:|---:|---:|---:|");
        md.AppendLine(CultureInfo.InvariantCulture, $"| {rounds} | {sorted[0]:F0} | {Percentile(sorted, 0.5):F0} | {Percentile(sorted, 0.99):F0} | {sorted[^1]:F0} |");
        md.AppendLine();
        md.AppendLine("## Anti-entropy bytes per update");
        md.AppendLine();
        md.AppendLine("Updates spread round-robin over the 3 members; bytes are the sum over the members of `arbiter_crdt_gossip_bytes_total` (protobuf messages, no gRPC/HTTP/2 framing) from before the first update until every member held every update, divided by `arbiter_crdt_updates_total`. Digest traffic runs on a 2 s timer whatever the load, so it weighs more in slow cells.");
        md.AppendLine();
        md.AppendLine("| type | clients | updates | seconds | delta B | ack B | digest B | repair B | bytes/update |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var cell in cells)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {cell.Type} | {cell.Clients} | {cell.Updates} | {cell.Seconds:F1} | {cell.Bytes["delta"]} | {cell.Bytes["ack"]} | {cell.Bytes["digest"]} | {cell.Bytes["repair"]} | {cell.BytesPerUpdate:F1} |");
        }

        return md.ToString();
    }
}

/// <summary>Runs the benchmark only when bench/crdt-convergence.sh asks (ARBITER_BENCH_OUT set) and partitions can be made.</summary>
public sealed class CrdtBenchFactAttribute : FactAttribute
{
    /// <summary>The directory the results go to; the benchmark is skipped without it.</summary>
    public const string OutVariable = "ARBITER_BENCH_OUT";

    public CrdtBenchFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(OutVariable)))
        {
            Skip = "a benchmark: run bench/crdt-convergence.sh (it sets ARBITER_BENCH_OUT)";
        }
        else if (IptablesPartition.UnavailableReason is { } reason)
        {
            Skip = $"network partitions unavailable: {reason}";
        }
    }
}
