using Arbiter.Compatibility.Tests.Differential;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// Random op sequences against a fresh etcd and a fresh candidate; every answer and every watch event
/// must match. Against a second etcd it proves the harness itself is deterministic.
/// </summary>
public abstract class DifferentialTests(ITestOutputHelper output)
{
    private const int OpsPerSeed = 600;

    public static TheoryData<int> Seeds => DifferentialRun.Seeds(1, 7, 2024);

    [Theory]
    [MemberData(nameof(Seeds), MemberType = typeof(DifferentialTests))]
    public async Task SameAnswersAsEtcd(int seed)
    {
        await using var reference = new EtcdProcess("etcd-reference");
        await RunAsync(new DifferentialRun(seed, OpsPerSeed, output), reference);
    }

    protected abstract Task RunAsync(DifferentialRun run, EtcdProcess reference);
}

[Trait("Target", "Etcd")]
public sealed class DifferentialTestsOnEtcd(ITestOutputHelper output) : DifferentialTests(output)
{
    protected override async Task RunAsync(DifferentialRun run, EtcdProcess reference)
    {
        await using var candidate = new EtcdProcess("etcd-candidate");
        await run.RunAsync(reference, candidate);
    }
}

[Trait("Target", "Arbiter")]
public sealed class DifferentialTestsOnArbiter(ITestOutputHelper output) : DifferentialTests(output)
{
    protected override async Task RunAsync(DifferentialRun run, EtcdProcess reference)
    {
        await using var candidate = new ArbiterProcess();
        await run.RunAsync(reference, candidate);
    }
}

/// <summary>The same op sequences through a follower of a fresh 3-member cluster: forwarding must not change any answer or event.</summary>
[Trait("Target", "ArbiterCluster")]
public sealed class DifferentialTestsOnArbiterCluster(ITestOutputHelper output) : DifferentialTests(output)
{
    protected override async Task RunAsync(DifferentialRun run, EtcdProcess reference)
    {
        var candidate = new ArbiterClusterFixture();
        try
        {
            await run.RunAsync(reference, candidate);
        }
        finally
        {
            await candidate.DisposeAsync();
        }
    }
}
