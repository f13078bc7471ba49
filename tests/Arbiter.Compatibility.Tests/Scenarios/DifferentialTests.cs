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
        await using var candidate = CreateCandidate();
        await new DifferentialRun(seed, OpsPerSeed, output).RunAsync(reference, candidate);
    }

    protected abstract ServerProcess CreateCandidate();
}

[Trait("Target", "Etcd")]
public sealed class DifferentialTestsOnEtcd(ITestOutputHelper output) : DifferentialTests(output)
{
    protected override ServerProcess CreateCandidate() => new EtcdProcess("etcd-candidate");
}

[Trait("Target", "Arbiter")]
public sealed class DifferentialTestsOnArbiter(ITestOutputHelper output) : DifferentialTests(output)
{
    protected override ServerProcess CreateCandidate() => new ArbiterProcess();
}
