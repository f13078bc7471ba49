using Arbiter.Verification.Checkers;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Reports;
using Arbiter.Verification.Workloads;

namespace Arbiter.Verification.Tests.Live;

/// <summary>
/// One short live history per workload on a 3-member cluster of real <c>arbiter serve</c> processes
/// (each on its own 127.0.X.y address), and the deliberately weak mode the checker must catch.
/// </summary>
public sealed class LiveHistoryTests(ITestOutputHelper output)
{
    [LiveFact]
    public Task Register_history_under_leader_kills_is_linearizable() => RunValidAsync("register", NemesisKind.KillLeader, 6);

    [LiveFact]
    public Task Lock_history_under_member_pauses_keeps_mutual_exclusion_and_fencing() => RunValidAsync("lock", NemesisKind.Pause, 6);

    [LiveFact]
    public Task Watch_history_under_a_majority_partition_keeps_the_watch_guarantees() => RunValidAsync("watch", NemesisKind.PartitionMajority, 6);

    [LiveFact]
    public async Task Serializable_reads_under_an_isolated_member_are_reported_as_stale_reads()
    {
        var (result, _) = await RunAsync("register", NemesisKind.PartitionOne, 10, new WorkloadOptions { SerializableReads = true, Clients = 6, PinnedReadersPerMember = 1 });
        Assert.Equal(Verdict.Violation, result.Verdict);
        Assert.Contains(result.Violations, v => v.Kind is "stale-read" or "lost-write" or "nonlinearizable");
        Assert.All(result.Violations, v => Assert.NotEmpty(v.Window));
        Assert.True(result.TimelineFile is { } timeline && File.Exists(timeline), "no timeline drawn for the violation");
    }

    private async Task RunValidAsync(string workload, NemesisKind nemesis, int seconds)
    {
        var (result, history) = await RunAsync(workload, nemesis, seconds, new WorkloadOptions());
        Assert.True(result.Verdict == Verdict.Ok, result.Line() + "\n" + string.Join("\n", result.Violations.Select(v => v.Explanation)));
        Assert.True(result.Faults > 0, "the nemesis injected nothing");
        Assert.True(history.Operations.Count(o => o.Status == History.OperationStatus.Ok) > 20, $"too few operations completed: {result.Line()}");
    }

    private Task<(RunResult, History.HistoryFile)> RunAsync(string workload, NemesisKind nemesis, int seconds, WorkloadOptions workloadOptions) =>
        LiveSupport.RunAsync(output, workload, nemesis, seconds, workloadOptions);
}

internal static class LiveSupport
{
    public static int Seed() => int.TryParse(Environment.GetEnvironmentVariable("ARBITER_TEST_SEED"), out var seed) ? seed : Random.Shared.Next(1, int.MaxValue / 2);

    /// <summary>tests/Arbiter.Verification.Tests/bin/{Configuration}/net10.0/ → src/Arbiter.Cli/bin/{Configuration}/net10.0/arbiter.dll.</summary>
    public static string ArbiterDll
    {
        get
        {
            var testDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var repoRoot = testDir.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
            return Path.Combine(repoRoot, "src", "Arbiter.Cli", "bin", testDir.Parent.Name, testDir.Name, "arbiter.dll");
        }
    }

    /// <summary>Records and checks one live history, printing the seed, verdict, notes, violations and the cluster's log.</summary>
    public static async Task<(RunResult, History.HistoryFile)> RunAsync(ITestOutputHelper output, string workload, NemesisKind nemesis, int seconds, WorkloadOptions workloadOptions, HarnessClusterOptions? cluster = null)
    {
        var seed = Seed();
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        var log = new StringWriter();
        var (result, history) = await VerificationRunner.RunAsync(
            new RunOptions
            {
                Workload = workload,
                Nemesis = nemesis,
                DurationSeconds = seconds,
                Seed = seed,
                Cluster = cluster ?? Cluster(),
                WorkloadOptions = workloadOptions,
                OutputDirectory = Path.Combine(Path.GetTempPath(), "arbiter-verify-tests"),
            },
            log);
        output.WriteLine(result.Line());
        output.WriteLine(result.Summary);
        foreach (var note in history.Notes)
        {
            output.WriteLine($"{note.AtNs / 1e6:F0} ms {note.Source}: {note.Text}");
        }

        foreach (var violation in result.Violations.Take(5))
        {
            output.WriteLine($"{violation.Kind}: {violation.Explanation}");
        }

        output.WriteLine(log.ToString());
        Assert.Null(result.Error);
        return (result, history);
    }

    public static HarnessClusterOptions Cluster(ServerKind kind = ServerKind.Arbiter) => new()
    {
        Kind = kind,
        Members = 3,
        SeparateUsers = true,
        ArbiterCommand = ("dotnet", [ArbiterDll]),
    };
}

/// <summary>A live history test: skipped, with the reason, where partitions (root, iptables, setpriv) are unavailable.</summary>
public class LiveFactAttribute : FactAttribute
{
    public LiveFactAttribute()
    {
        if (IptablesPartitioner.UnavailableReason() is { } reason)
        {
            Skip = $"live histories need root, iptables and setpriv: {reason}";
        }
    }
}

/// <summary>A live test that also needs libfaketime (clock skew); skipped with the reason without it.</summary>
public sealed class ClockSkewFactAttribute : LiveFactAttribute
{
    public ClockSkewFactAttribute()
    {
        if (Skip is null && FakeTime.UnavailableReason() is { } reason)
        {
            Skip = $"clock skew needs libfaketime: {reason}";
        }
    }
}
