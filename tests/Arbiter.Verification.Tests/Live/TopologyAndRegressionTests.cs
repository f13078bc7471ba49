using Arbiter.Verification.Checkers;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.History;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Workloads;

namespace Arbiter.Verification.Tests.Live;

/// <summary>Five-member clusters with the overlapping-majorities ring, and regressions the harness found.</summary>
public sealed class TopologyAndRegressionTests(ITestOutputHelper output)
{
    [LiveFact]
    public async Task Ring_partition_runs_on_five_members_and_the_register_stays_linearizable()
    {
        var (result, history) = await LiveSupport.RunAsync(output, "register", NemesisKind.PartitionRing, 8, new WorkloadOptions());
        Assert.Equal(5, result.Members);
        Assert.True(result.Verdict == Verdict.Ok, result.Line() + "\n" + string.Join("\n", result.Violations.Select(v => v.Explanation)));
        Assert.True(result.Faults > 0, "the nemesis injected nothing");
        Assert.Contains(history.Notes, n => n.Text.StartsWith("ring ", StringComparison.Ordinal));
    }

    /// <summary>
    /// Found by the harness (register × pause-leader, seed 5): with the leader SIGSTOPped no client
    /// operation completed until it was resumed, although the other members elected a new leader.
    /// Each pause here holds 12.5–13.5 s (lease TTL 12 s + 0.5–1.5 s); some operation invoked after the
    /// SIGSTOP must complete before the SIGCONT. The pause is long because recovery is still slow at
    /// times: 2.1–7.0 s here, and once more than 6.3 s (see docs/verification.md). The harness's clients behave like etcd clients: each
    /// call has a deadline (3 s) and a client moves to the next member when a call fails.
    /// </summary>
    [LiveFact]
    public async Task Paused_leader_does_not_stall_every_client_until_it_resumes()
    {
        var (result, history) = await LiveSupport.RunAsync(output, "register", NemesisKind.PauseLeader, 16, new WorkloadOptions { LeaseTtlSeconds = 12 });
        Assert.True(result.Verdict == Verdict.Ok, result.Line());
        var pauses = LeaderPauses(history);
        foreach (var pause in pauses)
        {
            output.WriteLine(pause.ToString());
        }

        Assert.Contains(pauses, p => p.Judged);
        Assert.All(pauses.Where(p => p.Judged), p => Assert.True(p.FirstOkAfterStopNs is not null, $"no client operation completed while {p.Member} was stopped: {p}"));
    }

    /// <summary>The stall check catches a planted stall: a history where nothing completes while the leader is stopped.</summary>
    [Fact]
    public void The_stall_check_catches_a_planted_stall()
    {
        const long Second = 1_000_000_000L;
        var stalled = new HistoryFile
        {
            Operations =
            [
                new Operation { Id = 0, Process = 0, Kind = OperationKind.Read, Key = "k", InvokeNs = 1 * Second, CompleteNs = 2 * Second, Status = OperationStatus.Ok },
                new Operation { Id = 1, Process = 1, Kind = OperationKind.Read, Key = "k", InvokeNs = 4 * Second, CompleteNs = 13 * Second, Status = OperationStatus.Ok },
                new Operation { Id = 2, Process = 2, Kind = OperationKind.Read, Key = "k", InvokeNs = 4 * Second, CompleteNs = 7 * Second, Status = OperationStatus.Fail },
            ],
            Notes = [new HistoryNote(3 * Second, "nemesis", "SIGSTOP n1"), new HistoryNote(12 * Second, "nemesis", "SIGCONT n1")],
        };
        var pause = Assert.Single(LeaderPauses(stalled));
        Assert.True(pause.Judged);
        Assert.Null(pause.FirstOkAfterStopNs);

        var recovered = stalled with { Operations = [.. stalled.Operations, new Operation { Id = 3, Process = 3, Kind = OperationKind.Read, Key = "k", InvokeNs = 7 * Second, CompleteNs = 7 * Second + 5, Status = OperationStatus.Ok }] };
        Assert.Equal(4 * Second + 5, Assert.Single(LeaderPauses(recovered)).FirstOkAfterStopNs);
    }

    /// <summary>A leader pause: when it stopped and resumed, and how soon after the stop an operation invoked after it completed.</summary>
    private sealed record Pause(string Member, long StoppedNs, long ResumedNs, long? FirstOkAfterStopNs)
    {
        /// <summary>Pauses shorter than 6 s (cut short by the end of the run) are not judged: an election may not be over.</summary>
        public bool Judged => ResumedNs - StoppedNs >= 6_000_000_000L;

        public override string ToString() =>
            $"{Member} stopped {StoppedNs / 1e9:F1} s → {(ResumedNs == long.MaxValue ? "never resumed" : $"{ResumedNs / 1e9:F1} s")}; first operation invoked and completed meanwhile: {(FirstOkAfterStopNs is { } f ? $"{f / 1e9:F1} s after the stop" : "none")}{(Judged ? string.Empty : " (not judged: shorter than 6 s)")}";
    }

    private static List<Pause> LeaderPauses(HistoryFile history)
    {
        var pauses = new List<Pause>();
        var notes = history.Notes.Where(n => n.Source == "nemesis").ToList();
        for (var i = 0; i < notes.Count; i++)
        {
            if (!notes[i].Text.StartsWith("SIGSTOP ", StringComparison.Ordinal))
            {
                continue;
            }

            var member = notes[i].Text["SIGSTOP ".Length..];
            var stoppedNs = notes[i].AtNs;
            var resumedNs = notes.Skip(i + 1).FirstOrDefault(n => n.Text == $"SIGCONT {member}")?.AtNs ?? long.MaxValue;
            var firstOk = history.Operations
                .Where(o => o.Status == OperationStatus.Ok && o.InvokeNs > stoppedNs && o.CompleteNs < resumedNs)
                .Select(o => (long?)(o.CompleteNs - stoppedNs))
                .Min();
            pauses.Add(new Pause(member, stoppedNs, resumedNs, firstOk));
        }

        return pauses;
    }

    [LiveFact]
    [Trait("Category", "Soak")]
    public async Task Etcd_ring_partition_on_five_members_keeps_the_register_linearizable()
    {
        if (!File.Exists("/usr/bin/etcd"))
        {
            output.WriteLine("skipped: /usr/bin/etcd is not installed");
            return;
        }

        var (result, _) = await LiveSupport.RunAsync(output, "register", NemesisKind.PartitionRing, 8, new WorkloadOptions(), LiveSupport.Cluster(ServerKind.Etcd));
        Assert.Equal(5, result.Members);
        Assert.True(result.Verdict == Verdict.Ok, result.Line());
        Assert.True(result.Faults > 0, "the nemesis injected nothing");
    }
}
