using Arbiter.Verification.Checkers;

namespace Arbiter.Verification.Reports;

/// <summary>The JSON result of one history: what ran, how much, and the verdict with violations by kind.</summary>
public sealed record RunResult
{
    /// <summary>arbiter, etcd, or the given endpoints.</summary>
    public required string Target { get; init; }

    /// <summary>The workload.</summary>
    public required string Workload { get; init; }

    /// <summary>The nemesis.</summary>
    public required string Nemesis { get; init; }

    /// <summary>The seed (replays the nemesis schedule and the clients' choices).</summary>
    public required int Seed { get; init; }

    /// <summary>Members of the cluster the harness started (0 for given endpoints).</summary>
    public int Members { get; init; }

    /// <summary>Length of the faulty part, seconds.</summary>
    public required int DurationSeconds { get; init; }

    /// <summary>Ok, Violation or Unknown.</summary>
    public required Verdict Verdict { get; init; }

    /// <summary>Operations recorded.</summary>
    public required int Operations { get; init; }

    /// <summary>Operations whose outcome is unknown.</summary>
    public required int Indeterminate { get; init; }

    /// <summary>Operations that certainly failed.</summary>
    public required int Failed { get; init; }

    /// <summary>Faults injected.</summary>
    public required int Faults { get; init; }

    /// <summary>How many violations of each kind.</summary>
    public required IReadOnlyDictionary<string, int> ViolationsByKind { get; init; }

    /// <summary>The violations (each with its smallest unexplained window where the checker has one).</summary>
    public required IReadOnlyList<Violation> Violations { get; init; }

    /// <summary>What the checker checked.</summary>
    public required string Summary { get; init; }

    /// <summary>How long checking took, ms.</summary>
    public required long CheckMs { get; init; }

    /// <summary>The history file.</summary>
    public string? HistoryFile { get; init; }

    /// <summary>The timeline of the first violation (HTML), if any.</summary>
    public string? TimelineFile { get; init; }

    /// <summary>Set when the run itself failed (cluster did not start, …): no verdict on the system.</summary>
    public string? Error { get; init; }

    /// <summary>The one-line verdict.</summary>
    public string Line()
    {
        var head = Error is not null ? "ERROR" : Verdict switch { Verdict.Ok => "VALID", Verdict.Violation => "INVALID", _ => "UNKNOWN" };
        var share = Operations == 0 ? 0 : 100.0 * Indeterminate / Operations;
        var kinds = ViolationsByKind.Count == 0 ? "0 violations" : string.Join(", ", ViolationsByKind.Select(k => $"{k.Value} {k.Key}"));
        return $"{head} {Target}{(Members is 0 or 3 ? string.Empty : $" ({Members} members)")} {Workload} × {Nemesis} seed {Seed}: {Operations} ops ({share:F1}% indeterminate, {Failed} failed), {Faults} faults, {kinds}{(Error is null ? string.Empty : $" — {Error}")}";
    }
}
