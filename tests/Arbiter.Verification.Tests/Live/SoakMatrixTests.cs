using Arbiter.Verification.Checkers;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Reports;
using Arbiter.Verification.Workloads;

namespace Arbiter.Verification.Tests.Live;

/// <summary>
/// Every workload × every nemesis × several seeds, on Arbiter and on etcd 3.4 where /usr/bin/etcd is
/// installed (clock-skew on Arbiter only; partition-ring on 5 members). Long: run with
/// <c>dotnet test tests/Arbiter.Verification.Tests -c Release --filter "Category=Soak&amp;FullyQualifiedName~SoakMatrixTests"</c>.
/// Environment: ARBITER_VERIFY_SOAK_SECONDS sets each history's length (default 20);
/// ARBITER_VERIFY_SOAK_SEEDS how many seeds per cell (default 3: seeds 1, 2, 3); ARBITER_VERIFY_SOAK_TARGETS,
/// ARBITER_VERIFY_SOAK_WORKLOADS and ARBITER_VERIFY_SOAK_NEMESES (comma-separated) narrow it to a slice.
/// </summary>
[Trait("Category", "Soak")]
public sealed class SoakMatrixTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string, int> Matrix()
    {
        var data = new TheoryData<string, string, string, int>();
        var seeds = int.TryParse(Environment.GetEnvironmentVariable("ARBITER_VERIFY_SOAK_SEEDS"), out var n) && n > 0 ? n : 3;
        var targets = Slice("ARBITER_VERIFY_SOAK_TARGETS", File.Exists("/usr/bin/etcd") ? ["arbiter", "etcd"] : ["arbiter"]);
        foreach (var target in targets)
        {
            foreach (var workload in Slice("ARBITER_VERIFY_SOAK_WORKLOADS", WorkloadRegistry.Names))
            {
                foreach (var nemesis in Slice("ARBITER_VERIFY_SOAK_NEMESES", Nemesis.Names.All))
                {
                    if (!Nemesis.AppliesTo(Nemesis.Names.Parse(nemesis), target == "etcd" ? ServerKind.Etcd : ServerKind.Arbiter))
                    {
                        continue;
                    }

                    for (var seed = 1; seed <= seeds; seed++)
                    {
                        data.Add(target, workload, nemesis, seed);
                    }
                }
            }
        }

        return data;
    }

    private static IReadOnlyList<string> Slice(string variable, IReadOnlyList<string> all) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } wanted
            ? [.. wanted.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(all.Contains)]
            : all;

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task History_is_valid(string target, string workload, string nemesis, int seed)
    {
        if (IptablesPartitioner.UnavailableReason() is { } reason)
        {
            output.WriteLine($"skipped: {reason}");
            return;
        }

        var seconds = int.TryParse(Environment.GetEnvironmentVariable("ARBITER_VERIFY_SOAK_SECONDS"), out var s) ? s : 20;
        var log = new StringWriter();
        var (result, _) = await VerificationRunner.RunAsync(
            new RunOptions
            {
                Workload = workload,
                Nemesis = Nemesis.Names.Parse(nemesis),
                DurationSeconds = seconds,
                Seed = seed,
                Cluster = LiveSupport.Cluster(target == "etcd" ? ServerKind.Etcd : ServerKind.Arbiter),
                OutputDirectory = Path.Combine(Path.GetTempPath(), "arbiter-verify-soak"),
            },
            log);
        output.WriteLine(result.Line());
        output.WriteLine(log.ToString());
        Assert.Null(result.Error);
        Assert.True(result.Verdict == Verdict.Ok, result.Line() + "\n" + string.Join("\n", result.Violations.Select(v => v.Explanation)));
    }
}
