using Arbiter.Verification.Checkers;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Reports;
using Arbiter.Verification.Workloads;

namespace Arbiter.Verification.Tests.Live;

/// <summary>
/// Every workload × every nemesis × several seeds, on Arbiter (and on etcd 3.4 where /usr/bin/etcd is
/// installed). Long: run with
/// <c>dotnet test tests/Arbiter.Verification.Tests -c Release --filter Category=Soak</c>
/// (ARBITER_VERIFY_SOAK_SECONDS sets each history's length, default 20).
/// </summary>
[Trait("Category", "Soak")]
public sealed class SoakMatrixTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string, int> Matrix()
    {
        var data = new TheoryData<string, string, string, int>();
        foreach (var target in File.Exists("/usr/bin/etcd") ? new[] { "arbiter", "etcd" } : ["arbiter"])
        {
            foreach (var workload in WorkloadRegistry.Names)
            {
                foreach (var nemesis in Nemesis.Names.All)
                {
                    for (var seed = 1; seed <= 3; seed++)
                    {
                        data.Add(target, workload, nemesis, seed);
                    }
                }
            }
        }

        return data;
    }

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
