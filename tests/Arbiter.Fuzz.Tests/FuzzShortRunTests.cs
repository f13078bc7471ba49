namespace Arbiter.Fuzz.Tests;

/// <summary>
/// The default run's fuzzing: every target for 20,000 seeded inputs from the committed corpus, no
/// crash, hang or unbounded allocation. The seed is printed; ARBITER_TEST_SEED replays it. The
/// million-input runs are bench/fuzz.sh (figures in docs/verification.md).
/// </summary>
public sealed class FuzzShortRunTests(ITestOutputHelper output)
{
    private const int Inputs = 20_000;

    public static TheoryData<string> Targets => [.. FuzzTargets.Names];

    [Theory]
    [MemberData(nameof(Targets))]
    public void TargetSurvivesTwentyThousandInputs(string target)
    {
        var seed = FuzzEngine.SeedFromEnvironment();
        output.WriteLine($"seed {seed} (replay: ARBITER_TEST_SEED={seed})");
        var corpus = FuzzCorpus.For(target);
        Assert.NotEmpty(corpus);
        var report = FuzzEngine.Run(FuzzTargets.Create(target), corpus, Inputs, seed);
        output.WriteLine(report.ToString());
        Assert.True(report.Failure is null, $"{report}\ninput (hex): {Convert.ToHexString(report.Failure?.Input ?? [])}");
        Assert.Equal(Inputs, report.Inputs);
    }
}
