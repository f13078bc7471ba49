using System.CommandLine;
using System.Text.Json;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.History;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Reports;
using Arbiter.Verification.Workloads;

namespace Arbiter.Cli.Commands;

/// <summary>
/// <c>arbiter verify</c>: record histories of a workload under a nemesis against a cluster of real
/// processes it starts (Arbiter or etcd) or against given endpoints, check them, and print a
/// one-line verdict per history plus a JSON result (and a timeline for a violation).
/// </summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var workload = new Option<string>("--workload") { Description = $"Workload: {string.Join(", ", WorkloadRegistry.Names)}, or all (cycled).", DefaultValueFactory = _ => "register" };
        var nemesis = new Option<string>("--nemesis") { Description = $"Nemesis (comma-separated, or all; cycled after the workloads): {string.Join(", ", Nemesis.Names.All)}.", DefaultValueFactory = _ => "none" };
        var duration = new Option<int>("--duration") { Description = "Seconds of workload under the nemesis per history (a short quiet tail follows the final heal).", DefaultValueFactory = _ => 30 };
        var seed = new Option<int?>("--seed") { Description = "Seed of the first history (the next ones use seed+1, …); random if not given." };
        var histories = new Option<int>("--histories") { Description = "How many histories: workloads × nemeses are cycled through.", DefaultValueFactory = _ => 1 };
        var skip = new Option<int>("--skip") { Description = "Start that many places into the workload × nemesis cycle (and seeds), to continue an interrupted matrix.", DefaultValueFactory = _ => 0 };
        var target = new Option<string>("--target") { Description = "What the harness starts: arbiter or etcd (/usr/bin/etcd).", DefaultValueFactory = _ => "arbiter" };
        target.AcceptOnlyFromAmong("arbiter", "etcd");
        var members = new Option<int>("--members") { Description = "Members of the started cluster (3 or 5; partition-ring always starts at least 5).", DefaultValueFactory = _ => 3 };
        var endpoints = new Option<string?>("--endpoints") { Description = "Comma-separated client URLs of an existing cluster (Arbiter or etcd): nothing is started, only none and client-faults apply." };
        var serializable = new Option<bool>("--serializable-reads") { Description = "Register reads served from each member's own state: the deliberately weak mode the checker must catch under a partition." };
        var pinnedReaders = new Option<int>("--pinned-readers") { Description = "Register: readers per member that never move to another member (with --serializable-reads they keep reading a cut-off member).", DefaultValueFactory = _ => 0 };
        var clients = new Option<int>("--clients") { Description = "Concurrent clients.", DefaultValueFactory = _ => 5 };
        var keys = new Option<int>("--keys") { Description = "Register keys.", DefaultValueFactory = _ => 3 };
        var leaseTtl = new Option<int>("--lease-ttl") { Description = "Lock workload lease TTL, seconds (pause-leader holds past it).", DefaultValueFactory = _ => 5 };
        var block = new Option<int>("--address-block") { Description = "Members listen on 127.0.X.11, .12, …; 0 picks a free X at random.", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Directory for histories, results and timelines.", DefaultValueFactory = _ => "verify-results" };
        var command = new Command("verify", "Jepsen-style verification: run a workload under a nemesis against real processes, record the history, check it.")
        {
            workload, nemesis, duration, seed, histories, skip, target, members, endpoints, serializable, pinnedReaders, clients, keys, leaseTtl, block, output,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            List<string> workloads;
            List<NemesisKind> nemeses;
            try
            {
                var w = result.GetValue(workload)!;
                workloads = w == "all" ? [.. WorkloadRegistry.Names] : [.. w.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
                _ = workloads.Select(WorkloadRegistry.Create).ToList();
                var n = result.GetValue(nemesis)!;
                var kind = result.GetValue(target) == "etcd" ? ServerKind.Etcd : ServerKind.Arbiter;
                nemeses = n == "all" ? [.. Enum.GetValues<NemesisKind>().Where(k => Nemesis.AppliesTo(k, kind))] : [.. n.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Nemesis.Names.Parse)];
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }

            var given = result.GetValue(endpoints) is { } list ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null;
            var firstSeed = result.GetValue(seed) ?? Random.Shared.Next(1, int.MaxValue / 2);
            var outDirectory = Path.GetFullPath(result.GetValue(output)!);
            var results = new List<RunResult>();
            var count = Math.Max(1, result.GetValue(histories));
            var first = Math.Max(0, result.GetValue(skip));
            for (var i = first; i < first + count && !cancellationToken.IsCancellationRequested; i++)
            {
                var options = new RunOptions
                {
                    Workload = workloads[i % workloads.Count],
                    Nemesis = nemeses[(i / workloads.Count) % nemeses.Count],
                    DurationSeconds = result.GetValue(duration),
                    Seed = firstSeed + i,
                    Endpoints = given,
                    Cluster = new HarnessClusterOptions
                    {
                        Kind = result.GetValue(target) == "etcd" ? ServerKind.Etcd : ServerKind.Arbiter,
                        Members = result.GetValue(members),
                        AddressBlock = result.GetValue(block),
                        SeparateUsers = OperatingSystem.IsLinux() && Environment.IsPrivilegedProcess,
                    },
                    WorkloadOptions = new WorkloadOptions
                    {
                        Clients = result.GetValue(clients),
                        Keys = result.GetValue(keys),
                        SerializableReads = result.GetValue(serializable),
                        PinnedReadersPerMember = result.GetValue(pinnedReaders),
                        LeaseTtlSeconds = result.GetValue(leaseTtl),
                    },
                    OutputDirectory = outDirectory,
                };
                RunResult run;
                try
                {
                    (run, _) = await VerificationRunner.RunAsync(options, Console.Out, cancellationToken).ConfigureAwait(false);
                }
                catch (ArgumentException e)
                {
                    Console.Error.WriteLine($"error: {e.Message}");
                    return 2;
                }

                results.Add(run);
                Console.WriteLine(run.Line());
                foreach (var violation in run.Violations.Take(3))
                {
                    Console.WriteLine($"  {violation.Kind}: {violation.Explanation}");
                }

                Console.WriteLine($"  result: {(run.HistoryFile is { } h ? Path.Combine(Path.GetDirectoryName(h)!, "result.json") : "(not written)")}{(run.TimelineFile is { } t ? $"  timeline: {t}" : string.Empty)}");
            }

            Directory.CreateDirectory(outDirectory);
            var summaryPath = Path.Combine(outDirectory, $"summary-{DateTime.UtcNow:yyyyMMdd'T'HHmmss}.json");
            await File.WriteAllTextAsync(summaryPath, JsonSerializer.Serialize(results, HistoryFile.JsonOptions), cancellationToken).ConfigureAwait(false);
            var violating = results.Count(r => r.Verdict == Verdict.Violation);
            var errors = results.Count(r => r.Error is not null || r.Verdict == Verdict.Unknown);
            var operations = results.Sum(r => r.Operations);
            var indeterminate = results.Sum(r => r.Indeterminate);
            Console.WriteLine($"{results.Count} histories, {operations} operations, {(operations == 0 ? 0 : 100.0 * indeterminate / operations):F1}% indeterminate, {violating} with violations, {errors} errors or unknown — {summaryPath}");
            return violating > 0 ? 1 : errors > 0 ? 3 : 0;
        });
        return command;
    }
}
