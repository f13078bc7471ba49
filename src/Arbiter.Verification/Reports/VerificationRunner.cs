using System.Diagnostics;
using System.Text.Json;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.History;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Workloads;

namespace Arbiter.Verification.Reports;

/// <summary>One history to record and check.</summary>
public sealed record RunOptions
{
    /// <summary>Workload name (see <see cref="WorkloadRegistry"/>).</summary>
    public string Workload { get; init; } = "register";

    /// <summary>The nemesis.</summary>
    public NemesisKind Nemesis { get; init; } = NemesisKind.None;

    /// <summary>How long the workload runs under the nemesis, seconds (a short quiet tail follows the final heal).</summary>
    public int DurationSeconds { get; init; } = 30;

    /// <summary>The seed.</summary>
    public int Seed { get; init; }

    /// <summary>The cluster to start (ignored with <see cref="Endpoints"/>).</summary>
    public HarnessClusterOptions Cluster { get; init; } = new();

    /// <summary>Given endpoints of an existing cluster: then nothing is started and only client-side faults apply.</summary>
    public IReadOnlyList<string>? Endpoints { get; init; }

    /// <summary>Workload knobs.</summary>
    public WorkloadOptions WorkloadOptions { get; init; } = new();

    /// <summary>Where the history, result and timeline go (a directory per run is made inside); nothing is written if null.</summary>
    public string? OutputDirectory { get; init; }
}

/// <summary>Starts (or connects to) a cluster, runs a workload under a nemesis, heals, checks, and writes the result.</summary>
public static class VerificationRunner
{
    /// <summary>Records and checks one history.</summary>
    public static async Task<(RunResult Result, HistoryFile History)> RunAsync(RunOptions options, TextWriter log, CancellationToken cancellationToken = default)
    {
        var target = options.Endpoints is { Count: > 0 } ? "endpoints" : options.Cluster.Kind.ToString().ToLowerInvariant();
        var workload = WorkloadRegistry.Create(options.Workload);
        options.WorkloadOptions.Validate();
        var nemesisName = Nemesis.Names.Of(options.Nemesis);
        if (options.Endpoints is not { Count: > 0 } && !Nemesis.AppliesTo(options.Nemesis, options.Cluster.Kind))
        {
            throw new ArgumentException($"{nemesisName} cannot be injected into {target}: clock skew reaches arbiter members only (etcd, a Go program, reads the clock through the vDSO, which libfaketime cannot move)", nameof(options));
        }

        var clusterOptions = options.Cluster with
        {
            ClockSkew = options.Cluster.ClockSkew || options.Nemesis == NemesisKind.ClockSkew,

            // Overlapping majorities need at least 5 members: with 3, a "ring" is just a bridge.
            Members = options.Nemesis == NemesisKind.PartitionRing ? Math.Max(5, options.Cluster.Members) : options.Cluster.Members,
        };
        ITargetCluster cluster;
        try
        {
            cluster = options.Endpoints is { Count: > 0 } endpoints
                ? new ExternalCluster(endpoints)
                : await HarnessCluster.StartAsync(clusterOptions, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return (Failed(options, target, nemesisName, $"cluster did not start: {e.Message.Split('\n')[0]}"), new HistoryFile());
        }

        await using (cluster.ConfigureAwait(false))
        {
            if (cluster is HarnessCluster started)
            {
                log.WriteLine($"cluster: {string.Join(", ", started.Members.Select(m => $"{m.Name}={m.Endpoint}{(m.Uid is { } uid ? $" uid {uid}" : string.Empty)}"))}");
            }

            var context = new WorkloadContext(cluster.Endpoints, options.Seed, options.WorkloadOptions);
            try
            {
                var nemesis = new Nemesis(options.Nemesis, cluster, context.Recorder, context.ClientFaults, options.Seed, options.WorkloadOptions.LeaseTtlSeconds);
                using var stopWorkload = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                using var stopNemesis = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var running = Guard(workload.RunAsync(context, stopWorkload.Token), context);
                var faults = nemesis.RunAsync(stopNemesis.Token);
                await Task.Delay(TimeSpan.FromSeconds(options.DurationSeconds), cancellationToken).ConfigureAwait(false);
                await stopNemesis.CancelAsync().ConfigureAwait(false);
                await faults.ConfigureAwait(false);
                if (cluster is HarnessCluster harness)
                {
                    try
                    {
                        await harness.WaitHealthyAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
                        context.Recorder.Note("cluster", "healthy after the final heal");
                    }
                    catch (TimeoutException e)
                    {
                        context.Recorder.Note("cluster", $"not healthy 60 s after the final heal: {e.Message.Split('\n')[0]}");
                        log.WriteLine($"warning: cluster not healthy after the final heal\n{harness.Logs(20)}");
                    }
                }

                // A quiet tail after the heal: the system must recover, and later reads pin down earlier unknowns.
                await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken).ConfigureAwait(false);
                await stopWorkload.CancelAsync().ConfigureAwait(false);
                try
                {
                    await running.ConfigureAwait(false);
                }
                catch (WorkloadFailedException e)
                {
                    return (Failed(options, target, nemesisName, e.Message), context.ToHistory());
                }

                var agreement = await CheckReplicasAgreeAsync(cluster, context, log, cancellationToken).ConfigureAwait(false);
                var history = context.ToHistory();
                var clock = Stopwatch.StartNew();
                var check = workload.Check(history);
                if (agreement.Count > 0)
                {
                    check = check with
                    {
                        Verdict = Verdict.Violation,
                        Violations = [.. check.Violations, .. agreement],
                        Summary = $"{check.Summary}; members disagree after the heal",
                    };
                }
                var result = new RunResult
                {
                    Target = target,
                    Workload = workload.Name,
                    Nemesis = nemesisName,
                    Seed = options.Seed,
                    Members = cluster is HarnessCluster h ? h.Members.Count : 0,
                    DurationSeconds = options.DurationSeconds,
                    Verdict = check.Verdict,
                    Operations = history.Operations.Count,
                    Indeterminate = history.Operations.Count(o => o.Status == OperationStatus.Info),
                    Failed = history.Operations.Count(o => o.Status == OperationStatus.Fail),
                    Faults = nemesis.Injected,
                    ViolationsByKind = check.Violations.GroupBy(v => v.Kind).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count()),
                    Violations = check.Violations,
                    Summary = check.Summary,
                    CheckMs = clock.ElapsedMilliseconds,
                };
                if (check.Verdict != Verdict.Ok && cluster is HarnessCluster failedCluster)
                {
                    log.WriteLine(failedCluster.Logs(30));
                }

                return (Write(options, result, history, cluster is HarnessCluster logged ? logged.Logs(400) : null), history);
            }
            finally
            {
                context.CloseChannels();
                context.ClientFaults.Dispose();
            }
        }
    }

    /// <summary>
    /// After the quiet tail: every member at the same revision with the same data
    /// (<see cref="ReplicaAgreement"/>). A sampling error is noted, not counted as a violation.
    /// </summary>
    private static async Task<IReadOnlyList<Violation>> CheckReplicasAgreeAsync(ITargetCluster cluster, WorkloadContext context, TextWriter log, CancellationToken cancellationToken)
    {
        try
        {
            var samples = await ReplicaAgreement.SampleAsync(cluster.Endpoints, context.Channel, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
            var violations = ReplicaAgreement.Compare(samples);
            context.Recorder.Note("cluster", violations.Count == 0
                ? $"{samples.Count} members agree at revision {(samples.Count > 0 ? samples[0].HashRevision : 0)}"
                : string.Join("; ", violations.Select(v => v.Explanation)));
            return violations;
        }
        catch (Grpc.Core.RpcException e)
        {
            context.Recorder.Note("cluster", $"member agreement not checked: {e.Status.Detail}");
            log.WriteLine($"warning: member agreement not checked: {e.Status.Detail}");
            return [];
        }
    }

    /// <summary>A workload that throws ends its run, noted in the history (an error in the harness, not a verdict on the system).</summary>
    private static async Task Guard(Task workload, WorkloadContext context)
    {
        try
        {
            await workload.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            context.Recorder.Note("harness", $"workload failed: {e}");
            throw new WorkloadFailedException($"workload failed: {e.GetType().Name}: {e.Message}", e);
        }
    }

    private static RunResult Failed(RunOptions options, string target, string nemesis, string error) => new()
    {
        Target = target,
        Workload = options.Workload,
        Nemesis = nemesis,
        Seed = options.Seed,
        DurationSeconds = options.DurationSeconds,
        Verdict = Verdict.Unknown,
        Operations = 0,
        Indeterminate = 0,
        Failed = 0,
        Faults = 0,
        ViolationsByKind = new Dictionary<string, int>(),
        Violations = [],
        Summary = string.Empty,
        CheckMs = 0,
        Error = error,
    };

    private static RunResult Write(RunOptions options, RunResult result, HistoryFile history, string? memberLogs)
    {
        if (options.OutputDirectory is null)
        {
            return result;
        }

        var directory = Path.Combine(options.OutputDirectory, $"{DateTime.UtcNow:yyyyMMdd'T'HHmmss}-{result.Target}-{result.Workload}-{result.Nemesis}-{result.Seed}");
        Directory.CreateDirectory(directory);
        var historyPath = Path.Combine(directory, "history.json");
        history.Save(historyPath);
        if (memberLogs is not null)
        {
            File.WriteAllText(Path.Combine(directory, "members.log"), memberLogs);
        }

        string? timelinePath = null;
        if (result.Violations.Count > 0)
        {
            timelinePath = Path.Combine(directory, "timeline.html");
            File.WriteAllText(timelinePath, Timeline.Html(result.Violations[0], history));
        }

        result = result with { HistoryFile = historyPath, TimelineFile = timelinePath };
        File.WriteAllText(Path.Combine(directory, "result.json"), JsonSerializer.Serialize(result, HistoryFile.JsonOptions));
        return result;
    }
}

/// <summary>A workload threw: the harness failed, so the run has no verdict.</summary>
public sealed class WorkloadFailedException : Exception
{
    /// <summary>With a message and the workload's exception.</summary>
    public WorkloadFailedException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>Without detail.</summary>
    public WorkloadFailedException()
    {
    }

    /// <summary>With a message.</summary>
    public WorkloadFailedException(string message)
        : base(message)
    {
    }
}
