using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Cli.Commands;

/// <summary>
/// <c>arbiter transactions</c>: what the lock table holds right now, from the
/// <c>arbiter.v1.Transactions/Status</c> RPC of the first endpoint that answers — open transactions
/// (id, mode, age, open time, lease, locks held), lock waiters with the wait-for edges (who waits on
/// whom, for which key), and the replicated counters. <c>--output json</c> prints the same as one
/// JSON document for scripts.
/// </summary>
internal static class TransactionsCommand
{
    /// <summary>Exit code when no endpoint answered.</summary>
    private const int ExitUnreachable = 1;

    public static Command Create()
    {
        var endpoints = new Option<string>("--endpoints") { Description = "Comma-separated client URLs; the first that answers is asked.", DefaultValueFactory = _ => "http://127.0.0.1:2379" };
        var output = new Option<string>("--output", "-w") { Description = "table (for people) or json (for scripts).", DefaultValueFactory = _ => "table" };
        output.AcceptOnlyFromAmong("table", "json");
        var timeoutMs = new Option<int>("--timeout-ms") { Description = "Deadline of the call to each endpoint, ms.", DefaultValueFactory = _ => 5000 };
        var command = new Command("transactions", "Show open transactions, locks, lock waiters (who waits on whom) and the transaction counters.")
        {
            endpoints, output, timeoutMs,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            var urls = result.GetValue(endpoints)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var errors = new List<string>();
            foreach (var url in urls)
            {
                try
                {
                    using var channel = GrpcChannel.ForAddress(url);
                    var status = await new Transactions.TransactionsClient(channel)
                        .StatusAsync(new TransactionStatusRequest(), deadline: DateTime.UtcNow.AddMilliseconds(Math.Max(1, result.GetValue(timeoutMs))), cancellationToken: cancellationToken)
                        .ConfigureAwait(false);
                    Console.Out.Write(result.GetValue(output) == "json" ? TransactionStatusView.Json(status, url) : TransactionStatusView.Table(status, url));
                    return 0;
                }
                catch (Exception e) when (e is RpcException or UriFormatException or InvalidOperationException)
                {
                    errors.Add($"{url}: {(e is RpcException r ? $"{r.StatusCode} {r.Status.Detail}" : e.Message)}");
                }
            }

            Console.Error.WriteLine("error: no endpoint answered Transactions/Status: " + string.Join("; ", errors));
            return ExitUnreachable;
        });
        return command;
    }
}

/// <summary>Renders a <see cref="TransactionStatusResponse"/> as a JSON document or as plain-text tables.</summary>
internal static class TransactionStatusView
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>One wait-for edge: <c>Waiter</c> waits for <c>Blocker</c> (a holder, or a request queued ahead) to get <c>Lock</c>.</summary>
    private sealed record Edge(long Waiter, long Blocker, LockInfo Lock, bool BlockerHolds);

    /// <summary>
    /// The JSON document: <c>transactions</c> (each with its locks and what it waits for),
    /// <c>waiters</c>, <c>edges</c> (waiter → blocker, with the key), every lock, and <c>counters</c>.
    /// Keys are UTF-8 text; <c>range_end</c> is empty for a single key and <c>"\u0000"</c> for "to the end".
    /// </summary>
    public static string Json(TransactionStatusResponse status, string endpoint)
    {
        var edges = Edges(status);
        var transactions = new JsonArray();
        foreach (var t in status.Transactions)
        {
            var waiting = status.Locks.FirstOrDefault(l => l.TxnId == t.TxnId && !l.Granted);
            transactions.Add(new JsonObject
            {
                ["id"] = t.TxnId,
                ["mode"] = Mode(t),
                ["age"] = t.Age,
                ["open_ms"] = t.OpenMs,
                ["time_limit_ms"] = t.TimeLimitMs,
                ["time_left_ms"] = t.TimeLeftMs,
                ["lease"] = t.Lease,
                ["lease_hex"] = t.Lease.ToString("x", CultureInfo.InvariantCulture),
                ["lease_remaining_ms"] = t.LeaseRemainingMs,
                ["snapshot_revision"] = t.SnapshotRevision,
                ["locks_held"] = t.LocksHeld,
                ["locks"] = new JsonArray([.. status.Locks.Where(l => l.TxnId == t.TxnId && l.Granted).Select(LockJson)]),
                ["waiting_for_lock"] = waiting is null ? null : LockJson(waiting),
                ["waits_for"] = new JsonArray([.. t.WaitsFor.Select(id => (JsonNode)id)]),
            });
        }

        var document = new JsonObject
        {
            ["endpoint"] = endpoint,
            ["member_id"] = status.Header?.MemberId.ToString("x", CultureInfo.InvariantCulture),
            ["revision"] = status.Header?.Revision ?? 0,
            ["raft_term"] = status.Header?.RaftTerm ?? 0,
            ["transactions"] = transactions,
            ["waiters"] = new JsonArray([.. status.Locks.Where(l => !l.Granted).Select(l =>
            {
                var json = LockJson(l);
                json["waits_for"] = new JsonArray([.. status.Transactions.Where(t => t.TxnId == l.TxnId).SelectMany(t => t.WaitsFor).Select(id => (JsonNode)id)]);
                return json;
            })]),
            ["edges"] = new JsonArray([.. edges.Select(e => (JsonNode)new JsonObject
            {
                ["waiter"] = e.Waiter,
                ["waits_for"] = e.Blocker,
                ["blocker_holds"] = e.BlockerHolds,
                ["key"] = Text(e.Lock.Key),
                ["range_end"] = Text(e.Lock.RangeEnd),
                ["mode"] = Mode(e.Lock.Mode),
            })]),
            ["locks"] = new JsonArray([.. status.Locks.Select(LockJson)]),
            ["counters"] = CountersJson(status.Counters ?? new TransactionCounters()),
        };
        return document.ToJsonString(Indented) + Environment.NewLine;
    }

    /// <summary>Plain-text tables: transactions, waiters with their edges, counters.</summary>
    public static string Table(TransactionStatusResponse status, string endpoint)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Transactions at revision {status.Header?.Revision ?? 0} (member {status.Header?.MemberId ?? 0:x} via {endpoint})");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Open transactions: {status.Transactions.Count}");
        if (status.Transactions.Count > 0)
        {
            var rows = status.Transactions.Select(t => new[]
            {
                I(t.TxnId), Mode(t), I(t.Age), Seconds(t.OpenMs), Seconds(t.TimeLeftMs), t.Lease.ToString("x", CultureInfo.InvariantCulture),
                t.LeaseRemainingMs < 0 ? "gone" : Seconds(t.LeaseRemainingMs), I(t.LocksHeld),
                string.Join(", ", status.Locks.Where(l => l.TxnId == t.TxnId && l.Granted).Select(l => $"{Mode(l.Mode)} {Span(l)}")),
                t.WaitsFor.Count == 0 ? "-" : string.Join(",", t.WaitsFor.Select(I)),
            });
            Render(text, ["ID", "MODE", "AGE", "OPEN", "TIME LEFT", "LEASE", "LEASE LEFT", "HELD", "LOCKS", "WAITS FOR"], rows);
        }

        var edges = Edges(status);
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Lock waiters: {status.Locks.Count(l => !l.Granted)} (wait-for edges: {edges.Count})");
        if (edges.Count > 0)
        {
            Render(text, ["WAITER", "WANTS", "KEY", "WAITS FOR", "BECAUSE"], edges.Select(e => new[]
            {
                I(e.Waiter), Mode(e.Lock.Mode), Span(e.Lock), I(e.Blocker), e.BlockerHolds ? "holds a conflicting lock" : "queued ahead (FIFO)",
            }));
        }

        var c = status.Counters ?? new TransactionCounters();
        text.AppendLine();
        text.AppendLine("Counters (since the cluster began, replicated):");
        Render(text, ["BEGUN", "COMMITTED", "ABORTED", "DEADLOCKS", "LOCK TIMEOUTS", "LOCK BUSY", "EXPIRED", "RETRIED", "GRANTS", "OPT COMMITS", "OPT CONFLICTS"], [[
            I(c.Begun), I(c.Committed), I(c.Aborted), I(c.Deadlocks), I(c.LockTimeouts), I(c.LockBusy), I(c.Expired), I(c.Retried), I(c.Grants), I(c.OptimisticCommits), I(c.OptimisticConflicts),
        ]]);
        return text.ToString();
    }

    /// <summary>
    /// Every wait-for edge: for each waiting request, each transaction it waits for (the server's
    /// <c>waits_for</c>), marked as holding a conflicting lock or being queued ahead of it.
    /// </summary>
    private static List<Edge> Edges(TransactionStatusResponse status)
    {
        var edges = new List<Edge>();
        foreach (var waiting in status.Locks.Where(l => !l.Granted))
        {
            foreach (var blocker in status.Transactions.Where(t => t.TxnId == waiting.TxnId).SelectMany(t => t.WaitsFor))
            {
                var holds = status.Locks.Any(l => l.TxnId == blocker && l.Granted && Overlaps(l, waiting));
                edges.Add(new Edge(waiting.TxnId, blocker, waiting, holds));
            }
        }

        return edges;
    }

    private static bool Overlaps(LockInfo a, LockInfo b) =>
        Less(a.Key, End(b)) && Less(b.Key, End(a));

    /// <summary>The exclusive end of a lock's span: the key plus a zero byte for a single key, null for "to the end".</summary>
    private static byte[]? End(LockInfo l) =>
        l.RangeEnd.IsEmpty ? [.. l.Key.Span, 0] : l.RangeEnd.Length == 1 && l.RangeEnd[0] == 0 ? null : l.RangeEnd.ToByteArray();

    private static bool Less(ByteString key, byte[]? end) => end is null || key.Span.SequenceCompareTo(end) < 0;

    private static JsonObject LockJson(LockInfo l) => new()
    {
        ["txn_id"] = l.TxnId,
        ["key"] = Text(l.Key),
        ["range_end"] = Text(l.RangeEnd),
        ["mode"] = Mode(l.Mode),
        ["granted"] = l.Granted,
        ["fencing_token"] = l.FencingToken,
        ["sequence"] = l.Sequence,
    };

    private static JsonObject CountersJson(TransactionCounters c) => new()
    {
        ["begun"] = c.Begun,
        ["committed"] = c.Committed,
        ["aborted"] = c.Aborted,
        ["deadlocks"] = c.Deadlocks,
        ["lock_timeouts"] = c.LockTimeouts,
        ["lock_busy"] = c.LockBusy,
        ["expired"] = c.Expired,
        ["retried"] = c.Retried,
        ["grants"] = c.Grants,
        ["optimistic_commits"] = c.OptimisticCommits,
        ["optimistic_conflicts"] = c.OptimisticConflicts,
    };

    private static string Mode(TransactionInfo t) => t.Snapshot ? "snapshot" : "pessimistic";

    private static string Mode(LockMode mode) => mode == LockMode.Exclusive ? "X" : "S";

    private static string Text(ByteString bytes) => bytes.ToStringUtf8();

    private static string Span(LockInfo l) =>
        l.RangeEnd.IsEmpty ? Text(l.Key) : l.RangeEnd.Length == 1 && l.RangeEnd[0] == 0 ? $"[{Text(l.Key)}, end)" : $"[{Text(l.Key)}, {Text(l.RangeEnd)})";

    private static string I(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Seconds(long ms) => (ms / 1000.0).ToString("0.0", CultureInfo.InvariantCulture) + " s";

    private static void Render(StringBuilder text, string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            text.AppendLine(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}
