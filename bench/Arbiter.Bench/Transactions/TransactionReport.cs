using System.Globalization;
using System.Text;
using ScottPlot;

namespace Arbiter.Bench.Transactions;

/// <summary>results.md (tables and the issue's targets, each with its verdict) and the charts of a <see cref="TransactionRun"/>.</summary>
public static class TransactionReport
{
    private static readonly Dictionary<string, Color> FamilyColors = new(StringComparer.Ordinal)
    {
        [BankFamilies.Pessimistic] = Colors.SteelBlue,
        [BankFamilies.PessimisticLockCall] = Colors.LightSteelBlue,
        [BankFamilies.Optimistic] = Colors.DarkOrange,
        [BankFamilies.Stm] = Colors.SeaGreen,
        [BankFamilies.EtcdStm] = Colors.Gray,
        [BankFamilies.Postgres] = Colors.Purple,
        [BankFamilies.Pessimistic + BankFamilies.UnarySuffix] = Colors.LightBlue,
        [BankFamilies.Optimistic + BankFamilies.UnarySuffix] = Colors.Moccasin,
        [BankFamilies.Stm + BankFamilies.UnarySuffix] = Colors.LightGreen,
    };

    /// <summary>The Markdown report.</summary>
    public static string Markdown(TransactionRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var text = new StringBuilder();
        text.AppendLine("# Bank transfers: pessimistic, optimistic, STM (Arbiter), STM (etcd), PostgreSQL");
        text.AppendLine();
        text.AppendLine(Inv($"Started {run.StartedUtc}; {run.DurationS:F0} s measured per cell after a warm-up; load average (1/5/15 min) {run.LoadAverageStart} at the start, {run.LoadAverageEnd} at the end."));
        text.AppendLine("A transfer reads two accounts and writes both in one transaction; latency is the whole transfer, retries included,");
        text.AppendLine("of the transfers that completed in the window. *Active* is commits/s × mean latency (Little's law): how many clients");
        text.AppendLine("were on average inside a transfer that completed. Well below the client count, the others sat in retries that did not");
        text.AppendLine("complete in the window (starved by backoff), and the latency percentiles do not include them.");
        text.AppendLine();
        text.AppendLine("| accounts | clients | family | commits/s | p50 ms | p99 ms | mean ms | active | retries/commit | deadlocks | errors | load (1 min) |");
        text.AppendLine("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var c in run.Cells)
        {
            text.AppendLine(Inv($"| {c.Accounts} | {c.Clients} | {c.Family} | {c.CommitsPerSecond:F1} | {c.LatencyMs.P50:F2} | {c.LatencyMs.P99:F2} | {c.LatencyMs.Mean:F2} | {Active(c):F1} | {c.RetriesPerCommit:F3} | {c.Deadlocks} | {c.Errors} | {c.LoadAverage.Split(' ')[0]} |"));
        }

        text.AppendLine();
        text.AppendLine("## Targets (issue #14)");
        text.AppendLine();
        text.AppendLine("| target | cell | figures | met |");
        text.AppendLine("|---|---|---|---|");
        foreach (var clients in run.Cells.Select(c => c.Clients).Distinct())
        {
            var hot = run.Cells.Where(c => c.Accounts == run.Cells.Min(x => x.Accounts) && c.Clients == clients).ToList();
            if (Find(hot, BankFamilies.Pessimistic) is { } p && Find(hot, BankFamilies.Postgres) is { } pg)
            {
                text.AppendLine(Inv($"| pessimistic on the hotspot ≥ PostgreSQL | {p.Accounts} accounts, {clients} clients | {p.CommitsPerSecond:F1} vs {pg.CommitsPerSecond:F1} commits/s | {(p.CommitsPerSecond >= pg.CommitsPerSecond ? "yes" : "no")} |"));
            }
        }

        foreach (var group in run.Cells.GroupBy(c => (c.Accounts, c.Clients)))
        {
            var cells = group.ToList();
            if (Find(cells, BankFamilies.EtcdStm) is not { } etcd)
            {
                continue;
            }

            foreach (var family in new[] { BankFamilies.Optimistic, BankFamilies.Stm })
            {
                if (Find(cells, family) is { } f)
                {
                    var ratio = etcd.CommitsPerSecond > 0 ? f.CommitsPerSecond / etcd.CommitsPerSecond : double.PositiveInfinity;
                    text.AppendLine(Inv($"| {family} ≥ 2× etcd's STM | {group.Key.Accounts} accounts, {group.Key.Clients} clients | {f.CommitsPerSecond:F1} vs {etcd.CommitsPerSecond:F1} commits/s ({ratio:F2}×) | {(ratio >= 2 ? "yes" : "no")} |"));
                }
            }
        }

        text.AppendLine();
        text.AppendLine("## Thrashing: retries per commit against contention");
        text.AppendLine();
        text.AppendLine("| family | " + string.Join(" | ", run.Cells.Select(c => (c.Accounts, c.Clients)).Distinct().Select(k => Inv($"{k.Accounts} acc, {k.Clients} cl"))) + " |");
        text.AppendLine("|---|" + string.Concat(run.Cells.Select(c => (c.Accounts, c.Clients)).Distinct().Select(_ => "---:|")));
        foreach (var family in run.Cells.Select(c => c.Family).Distinct())
        {
            text.AppendLine($"| {family} | " + string.Join(" | ", run.Cells.Select(c => (c.Accounts, c.Clients)).Distinct()
                .Select(k => run.Cells.FirstOrDefault(c => c.Family == family && c.Accounts == k.Accounts && c.Clients == k.Clients) is { } c ? Inv($"{c.RetriesPerCommit:F2}") : "")) + " |");
        }

        if (run.Totals.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("## Money conserved");
            text.AppendLine();
            foreach (var t in run.Totals)
            {
                text.AppendLine(Inv($"- {t.System}, {t.Accounts} accounts: {t.Actual} (expected {t.Expected}) — {(t.Actual == t.Expected ? "conserved" : "NOT conserved")}"));
            }
        }

        if (run.Deadlock is { } d)
        {
            text.AppendLine();
            text.AppendLine("## Deadlock detection latency (Arbiter, single node)");
            text.AppendLine();
            text.AppendLine("From sending the Lock request that closes a two-transaction cycle to the victim's `DeadlockException` (one log round trip: the cycle is found while the closing command is applied).");
            text.AppendLine();
            text.AppendLine("| shape | rounds | p50 ms | p99 ms | max ms |");
            text.AppendLine("|---|---:|---:|---:|---:|");
            text.AppendLine(Inv($"| the youngest closes the cycle (its own call answered) | {d.Rounds / 2} | {d.CloserIsVictimMs.P50:F2} | {d.CloserIsVictimMs.P99:F2} | {d.CloserIsVictimMs.Max:F2} |"));
            text.AppendLine(Inv($"| the oldest closes it (the waiting youngest answered) | {d.Rounds - (d.Rounds / 2)} | {d.WaiterIsVictimMs.P50:F2} | {d.WaiterIsVictimMs.P99:F2} | {d.WaiterIsVictimMs.Max:F2} |"));
        }

        return text.ToString();
    }

    /// <summary>throughput.png (commits/s per cell and family) and retries.png (retries per commit against clients, per account set).</summary>
    public static void WriteCharts(TransactionRun run, string directory)
    {
        ArgumentNullException.ThrowIfNull(run);
        var groups = run.Cells.Select(c => (c.Accounts, c.Clients)).Distinct().ToList();
        var families = run.Cells.Select(c => c.Family).Distinct().ToList();

        var plot = new Plot();
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        var width = families.Count + 1.5;
        for (var g = 0; g < groups.Count; g++)
        {
            for (var f = 0; f < families.Count; f++)
            {
                if (run.Cells.FirstOrDefault(c => c.Family == families[f] && (c.Accounts, c.Clients) == groups[g]) is { } cell)
                {
                    bars.Add(new Bar { Position = (g * width) + f, Value = cell.CommitsPerSecond, FillColor = FamilyColors.GetValueOrDefault(cell.Family, Colors.Black), Size = 0.9 });
                }
            }

            ticks.Add(new Tick((g * width) + ((families.Count - 1) / 2.0), Inv($"{groups[g].Accounts} accounts\n{groups[g].Clients} clients")));
        }

        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        plot.Axes.Bottom.MinimumSize = 60;
        plot.Axes.Left.Label.Text = "committed transfers / s";
        plot.Title("Bank transfers: throughput (higher is better; 8 accounts = hotspot)");
        foreach (var family in families)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = family, FillColor = FamilyColors.GetValueOrDefault(family, Colors.Black) });
        }

        plot.ShowLegend(Edge.Right);
        plot.Axes.Margins(bottom: 0);
        plot.SavePng(Path.Combine(directory, "throughput.png"), 1100, 600);

        var retries = new Plot();
        foreach (var accounts in run.Cells.Select(c => c.Accounts).Distinct())
        {
            foreach (var family in families)
            {
                var cells = run.Cells.Where(c => c.Family == family && c.Accounts == accounts).OrderBy(c => c.Clients).ToList();
                if (cells.Count == 0)
                {
                    continue;
                }

                var line = retries.Add.Scatter(cells.Select(c => (double)c.Clients).ToArray(), cells.Select(c => c.RetriesPerCommit).ToArray());
                line.LegendText = Inv($"{family}, {accounts} accounts");
                line.Color = FamilyColors.GetValueOrDefault(family, Colors.Black);
                line.LinePattern = accounts == run.Cells.Min(c => c.Accounts) ? LinePattern.Solid : LinePattern.Dotted;
                line.MarkerSize = 7;
            }
        }

        retries.Axes.Bottom.Label.Text = "concurrent clients";
        retries.Axes.Left.Label.Text = "retries per committed transfer";
        retries.Title("Contention: retries per commit (solid = hotspot, dotted = rare conflicts)");
        retries.ShowLegend(Edge.Right);
        retries.SavePng(Path.Combine(directory, "retries.png"), 1100, 600);
    }

    /// <summary>Clients inside a completed transfer on average: throughput × mean latency.</summary>
    public static double Active(BankCell cell)
    {
        ArgumentNullException.ThrowIfNull(cell);
        return cell.CommitsPerSecond * cell.LatencyMs.Mean / 1000.0;
    }

    private static BankCell? Find(List<BankCell> cells, string family) => cells.FirstOrDefault(c => c.Family == family);

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
