using System.Globalization;
using System.Text.RegularExpressions;
using Arbiter.Protocol.Etcd;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Reports;
using Arbiter.Verification.Workloads;
using Google.Protobuf;
using Grpc.Net.Client;

namespace Arbiter.Verification.Tests.Live;

/// <summary>
/// The clock-skew nemesis is real: a member started with libfaketime reports a wall clock moved by the
/// offset the harness sets (read from the <c>date</c> header Kestrel stamps from <c>DateTime.UtcNow</c>),
/// while its monotonic clock, and so leases and elections, are untouched; and the register workload
/// stays linearizable while members' clocks jump.
/// </summary>
public sealed partial class ClockSkewTests(ITestOutputHelper output)
{
    private const double ToleranceSeconds = 2.5;

    [ClockSkewFact]
    public async Task A_skewed_member_reports_a_skewed_wall_clock_and_its_leases_keep_monotonic_time()
    {
        await using var cluster = await HarnessCluster.StartAsync(LiveSupport.Cluster() with { ClockSkew = true });
        var ahead = cluster.Members[0];
        var behind = cluster.Members[1];
        await WaitOffsetAsync(ahead, 0);

        ahead.SetClockOffset(3_600);
        behind.SetClockOffset(-600.5);
        await WaitOffsetAsync(ahead, 3_600);
        await WaitOffsetAsync(behind, -600.5);
        await WaitOffsetAsync(cluster.Members[2], 0);

        // Skewed members still serve: a write through the member an hour ahead commits, and a lease
        // granted through it keeps its TTL by monotonic time as seen through the member 10 minutes behind.
        using var aheadChannel = GrpcChannel.ForAddress(ahead.Endpoint);
        using var behindChannel = GrpcChannel.ForAddress(behind.Endpoint);
        var put = await new KV.KVClient(aheadChannel).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("skew/k"), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow.AddSeconds(20));
        Assert.True(put.Header.Revision > 1);
        var lease = await new Lease.LeaseClient(aheadChannel).LeaseGrantAsync(new LeaseGrantRequest { TTL = 30 }, deadline: DateTime.UtcNow.AddSeconds(20));
        var live = await new Lease.LeaseClient(behindChannel).LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = lease.ID }, deadline: DateTime.UtcNow.AddSeconds(20));
        output.WriteLine($"lease granted through {ahead.CurrentName} (clock +3600 s) with TTL 30: {behind.CurrentName} (clock -600.5 s) says {live.TTL} s left");
        Assert.InRange(live.TTL, 15, 30);

        ahead.SetClockOffset(0);
        behind.SetClockOffset(0);
        await WaitOffsetAsync(ahead, 0);
        await WaitOffsetAsync(behind, 0);
    }

    [ClockSkewFact]
    public async Task Register_history_under_clock_skew_is_linearizable_and_the_skew_shows()
    {
        var (result, history) = await LiveSupport.RunAsync(output, "register", NemesisKind.ClockSkew, 8, new WorkloadOptions());
        Assert.True(result.Verdict == Verdict.Ok, result.Line() + "\n" + string.Join("\n", result.Violations.Select(v => v.Explanation)));
        Assert.True(result.Faults > 0, "the nemesis injected nothing");
        Assert.True(history.Operations.Count(o => o.Status == History.OperationStatus.Ok) > 20, $"too few operations completed: {result.Line()}");

        // Every skew the nemesis set was read back from the member's own wall clock.
        var set = new Dictionary<string, double>(StringComparer.Ordinal);
        var compared = 0;
        foreach (var note in history.Notes.Where(n => n.Source == "nemesis"))
        {
            if (SetNote().Match(note.Text) is { Success: true } s)
            {
                set[s.Groups[1].Value] = double.Parse(s.Groups[2].Value, CultureInfo.InvariantCulture);
            }
            else if (ReportNote().Match(note.Text) is { Success: true } r)
            {
                var observed = double.Parse(r.Groups[2].Value, CultureInfo.InvariantCulture);
                Assert.InRange(observed, set[r.Groups[1].Value] - ToleranceSeconds, set[r.Groups[1].Value] + ToleranceSeconds);
                compared++;
            }
        }

        Assert.True(compared > 0, "no skewed clock was read back");
    }

    [Fact]
    public async Task Clock_skew_is_refused_for_etcd_before_anything_starts()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => VerificationRunner.RunAsync(
            new RunOptions { Workload = "register", Nemesis = NemesisKind.ClockSkew, DurationSeconds = 1, Cluster = new HarnessClusterOptions { Kind = ServerKind.Etcd } },
            TextWriter.Null));
        output.WriteLine(error.Message);
        Assert.Contains("vDSO", error.Message, StringComparison.Ordinal);
    }

    private async Task WaitOffsetAsync(MemberProcess member, double expectedSeconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        double? observed = null;
        while (DateTime.UtcNow < deadline)
        {
            var before = DateTimeOffset.UtcNow;
            var reported = await HarnessCluster.WallClockAsync(member.Endpoint, TimeSpan.FromSeconds(5));
            var after = DateTimeOffset.UtcNow;
            observed = reported is { } at ? (at - (before + ((after - before) / 2))).TotalSeconds : null;
            if (observed is { } o && Math.Abs(o - expectedSeconds) <= ToleranceSeconds)
            {
                output.WriteLine($"{member.CurrentName}: wall clock {o:+0.0;-0.0;+0.0} s off (set {expectedSeconds:+0.0;-0.0;+0.0})");
                return;
            }

            await Task.Delay(200);
        }

        Assert.Fail($"{member.CurrentName}'s wall clock never read {expectedSeconds} s off within 30 s (last: {observed?.ToString("F1", CultureInfo.InvariantCulture) ?? "no answer"})");
    }

    [GeneratedRegex(@"^clock of (\S+) set ([+-][0-9.]+) s off$")]
    internal static partial Regex SetNote();

    [GeneratedRegex(@"^(\S+) reports a wall clock ([+-][0-9.]+) s off")]
    internal static partial Regex ReportNote();
}
