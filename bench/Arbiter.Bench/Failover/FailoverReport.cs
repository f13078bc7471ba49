using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Arbiter.Bench.Failover;

/// <summary>
/// <c>arbiter-bench failover-report</c>: joins each system's request log (from
/// <see cref="FailoverLoad"/>) with its fault log (from bench/failover.sh) and reports, per fault
/// kind, the write outage — fault to the first acknowledged write sent after it, anywhere in the
/// cluster — as p50 and max, and how the requests through the surviving members during each outage
/// ended: acknowledged, failed with an error, or cut by the client's deadline.
/// </summary>
public static class FailoverReport
{
    /// <summary>Usage of the command.</summary>
    public const string Usage = """
        arbiter-bench failover-report --system LABEL REQUESTS.csv FAULTS.csv [--system …] --out results.md [--json results.json]
        FAULTS.csv lines: kind,endpoint,fault_ms,heal_ms (endpoint: index of the faulted member).
        """;

    /// <summary>Runs the command.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        var systems = new List<SystemSummary>();
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--system")
            {
                if (i + 3 >= args.Count)
                {
                    throw new ArgumentException("--system needs LABEL REQUESTS.csv FAULTS.csv");
                }

                systems.Add(Summarize(args[i + 1], await File.ReadAllLinesAsync(args[i + 2], cancellationToken), await File.ReadAllLinesAsync(args[i + 3], cancellationToken)));
                i += 3;
            }
        }

        if (systems.Count == 0)
        {
            throw new ArgumentException("at least one --system is needed");
        }

        var markdown = Markdown(systems);
        await output.WriteAsync(markdown);
        if (FailoverLoad.Value(args, "--out") is { } outPath)
        {
            await File.WriteAllTextAsync(outPath, markdown, cancellationToken);
        }

        if (FailoverLoad.Value(args, "--json") is { } jsonPath)
        {
            await File.WriteAllTextAsync(jsonPath, JsonSerializer.Serialize(systems, BenchCli.JsonOptions), cancellationToken);
        }

        return 0;
    }

    /// <summary>One system's figures per fault kind, and every fault's own figures.</summary>
    public static SystemSummary Summarize(string label, IEnumerable<string> requestLines, IEnumerable<string> faultLines)
    {
        var requests = requestLines.Skip(1).Where(l => l.Length > 0).Select(ParseRequest).ToList();
        var faults = new List<FaultResult>();
        foreach (var line in faultLines.Where(l => l.Length > 0 && !l.StartsWith("kind", StringComparison.Ordinal)))
        {
            var parts = line.Split(',');
            var kind = parts[0];
            var endpoint = int.Parse(parts[1], CultureInfo.InvariantCulture);
            var faultMs = long.Parse(parts[2], CultureInfo.InvariantCulture);
            var healMs = long.Parse(parts[3], CultureInfo.InvariantCulture);
            var firstServedAfterHeal = requests.Where(r => r.Endpoint == endpoint && r.Outcome == "ok" && r.StartMs >= healMs).Select(r => (long?)r.EndMs).Min();
            var firstAck = requests.Where(r => r.Outcome == "ok" && r.StartMs >= faultMs).Select(r => (long?)r.EndMs).Min();
            var outageMs = firstAck is { } ack ? ack - faultMs : (long?)null;
            var windowEnd = firstAck ?? long.MaxValue;

            // Requests through the members that were not faulted, in flight at some point between the fault and the first acknowledged write after it.
            var window = requests.Where(r => r.Endpoint != endpoint && r.EndMs > faultMs && r.StartMs <= windowEnd).ToList();
            faults.Add(new FaultResult(
                kind,
                endpoint,
                faultMs,
                outageMs,
                window.Count,
                window.Count(r => r.Outcome == "ok"),
                window.Count(r => r.Outcome == "deadline"),
                firstServedAfterHeal is { } served ? served - healMs : null,
                window.Where(r => r.Outcome is not ("ok" or "deadline")).GroupBy(r => r.Outcome).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal)));
        }

        var kinds = faults.GroupBy(f => f.Kind).Select(g =>
        {
            var outages = g.Where(f => f.OutageMs is not null).Select(f => f.OutageMs!.Value).Order().ToList();
            var requestsInWindows = g.Sum(f => f.Requests);
            var rejoins = g.Where(f => f.RejoinMs is not null).Select(f => f.RejoinMs!.Value).Order().ToList();
            var deadlines = g.Sum(f => f.Deadlines);
            var errors = g.Sum(f => f.Errors.Values.Sum());
            return new KindSummary(
                g.Key,
                g.Count(),
                outages.Count == 0 ? null : outages[(outages.Count - 1) / 2],
                outages.Count == 0 ? null : outages[^1],
                g.Count(f => f.OutageMs is null),
                requestsInWindows,
                deadlines,
                errors,
                requestsInWindows == 0 ? 0 : (double)deadlines / requestsInWindows,
                deadlines + errors == 0 ? 0 : (double)deadlines / (deadlines + errors),
                rejoins.Count == 0 ? null : rejoins[(rejoins.Count - 1) / 2],
                rejoins.Count == 0 ? null : rejoins[^1]);
        }).OrderBy(k => k.Kind, StringComparer.Ordinal).ToList();
        return new SystemSummary(label, requests.Count, kinds, faults);
    }

    private static Request ParseRequest(string line)
    {
        var parts = line.Split(',', 4);
        return new Request(
            int.Parse(parts[0], CultureInfo.InvariantCulture),
            long.Parse(parts[1], CultureInfo.InvariantCulture),
            long.Parse(parts[2], CultureInfo.InvariantCulture),
            parts[3]);
    }

    private static string Markdown(IReadOnlyList<SystemSummary> systems)
    {
        var text = new StringBuilder();
        text.AppendLine("| system | fault | faults | outage p50 ms | outage max ms | no recovery | requests in outages | deadline-exceeded | errors | deadline share of requests | deadline share of failures | faulted member serves again p50 / max ms |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var system in systems)
        {
            foreach (var k in system.Kinds)
            {
                text.AppendLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {system.Label} | {k.Kind} | {k.Faults} | {k.OutageP50Ms?.ToString(CultureInfo.InvariantCulture) ?? "-"} | {k.OutageMaxMs?.ToString(CultureInfo.InvariantCulture) ?? "-"} | {k.Unrecovered} | {k.Requests} | {k.Deadlines} | {k.Errors} | {k.DeadlineShareOfRequests:P0} | {k.DeadlineShareOfFailures:P0} | {k.RejoinP50Ms?.ToString(CultureInfo.InvariantCulture) ?? "-"} / {k.RejoinMaxMs?.ToString(CultureInfo.InvariantCulture) ?? "-"} |"));
            }
        }

        text.AppendLine();
        text.AppendLine("Errors seen (requests through surviving members during outages):");
        text.AppendLine();
        foreach (var system in systems)
        {
            var errors = system.Faults.SelectMany(f => f.Errors).GroupBy(e => e.Key).Select(g => $"{g.Key} ×{g.Sum(e => e.Value)}");
            text.AppendLine($"- {system.Label}: {string.Join("; ", errors.DefaultIfEmpty("none"))}");
        }

        text.AppendLine();
        text.AppendLine("Every fault:");
        text.AppendLine();
        foreach (var system in systems)
        {
            text.AppendLine($"- {system.Label}: " + string.Join(", ", system.Faults.Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Kind}@m{f.Endpoint} {(f.OutageMs is { } o ? o + " ms" : "no recovery")}"))));
        }

        return text.ToString();
    }

    private sealed record Request(int Endpoint, long StartMs, long EndMs, string Outcome);
}

/// <summary>One system's result.</summary>
/// <param name="Label">etcd or arbiter.</param>
/// <param name="Requests">Requests in the whole run.</param>
/// <param name="Kinds">Figures per fault kind.</param>
/// <param name="Faults">Every fault.</param>
public sealed record SystemSummary(string Label, int Requests, IReadOnlyList<KindSummary> Kinds, IReadOnlyList<FaultResult> Faults);

/// <summary>Figures for one fault kind.</summary>
/// <param name="Kind">kill, stop or isolate.</param>
/// <param name="Faults">How many faults of this kind.</param>
/// <param name="OutageP50Ms">Median outage (fault to first acknowledged write sent after it).</param>
/// <param name="OutageMaxMs">Longest outage.</param>
/// <param name="Unrecovered">Faults after which no write was acknowledged before the run ended.</param>
/// <param name="Requests">Requests through surviving members during the outages.</param>
/// <param name="Deadlines">Of those, cut by the client's deadline.</param>
/// <param name="Errors">Of those, answered with an error.</param>
/// <param name="DeadlineShareOfRequests">Deadlines / requests.</param>
/// <param name="DeadlineShareOfFailures">Deadlines / (deadlines + errors).</param>
/// <param name="RejoinP50Ms">Median time from the heal (restart, SIGCONT, partition healed) to the first acknowledged write through the faulted member.</param>
/// <param name="RejoinMaxMs">Longest such time.</param>
public sealed record KindSummary(string Kind, int Faults, long? OutageP50Ms, long? OutageMaxMs, int Unrecovered, int Requests, int Deadlines, int Errors, double DeadlineShareOfRequests, double DeadlineShareOfFailures, long? RejoinP50Ms, long? RejoinMaxMs);

/// <summary>One fault.</summary>
/// <param name="Kind">kill, stop or isolate.</param>
/// <param name="Endpoint">Index of the faulted member.</param>
/// <param name="FaultMs">When (Unix ms).</param>
/// <param name="OutageMs">Fault to first acknowledged write sent after it; null if none.</param>
/// <param name="Requests">Requests through surviving members during the outage.</param>
/// <param name="Acknowledged">Of those, acknowledged.</param>
/// <param name="Deadlines">Of those, cut by the client's deadline.</param>
/// <param name="RejoinMs">From the heal to the first acknowledged write (sent after the heal) through the faulted member; null if none.</param>
/// <param name="Errors">Of those, answered with an error, by status and message.</param>
public sealed record FaultResult(string Kind, int Endpoint, long FaultMs, long? OutageMs, int Requests, int Acknowledged, int Deadlines, long? RejoinMs, IReadOnlyDictionary<string, int> Errors);
