using System.Diagnostics;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.History;

namespace Arbiter.Verification.Tests.Checkers;

public sealed class LinearizabilityCheckerTests(ITestOutputHelper output)
{
    private static int Seed() => int.TryParse(Environment.GetEnvironmentVariable("ARBITER_TEST_SEED"), out var seed) ? seed : Random.Shared.Next();

    private static IReadOnlyList<Operation> Load(string name) => HistoryFile.Load(Path.Combine(AppContext.BaseDirectory, "TestData", name)).Operations;

    [Theory]
    [InlineData("stale-read.json", "stale-read", new[] { 2, 3 })]
    [InlineData("lost-write.json", "lost-write", new[] { 1, 2 })]
    [InlineData("double-cas.json", "double-cas", new[] { 1, 2 })]
    [InlineData("unwritten-value.json", "unwritten-value", new[] { 0, 1 })]
    public void Hand_made_violation_is_caught_with_its_smallest_window(string file, string kind, int[] window)
    {
        var result = LinearizabilityChecker.Check(Load(file));
        foreach (var violation in result.Violations)
        {
            output.WriteLine($"{violation.Kind}: {violation.Explanation}");
        }

        Assert.Equal(Verdict.Violation, result.Verdict);
        var found = Assert.Single(result.Violations);
        Assert.Equal(kind, found.Kind);
        Assert.Equal(window, found.Window);
    }

    [Fact]
    public void Indeterminate_write_may_take_effect_late_and_failed_operations_never()
    {
        var result = LinearizabilityChecker.Check(Load("valid-with-info.json"));
        Assert.Equal(Verdict.Ok, result.Verdict);
    }

    [Fact]
    public void Indeterminate_write_never_observed_and_overwritten_is_legal()
    {
        var history = Load("valid-with-info.json").Where(o => o.Id != 5).ToList();
        Assert.Equal(Verdict.Ok, LinearizabilityChecker.Check(history).Verdict);
    }

    [Fact]
    public void Generated_valid_history_of_5000_operations_per_key_passes_and_a_planted_stale_read_is_caught()
    {
        var seed = Seed();
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        var history = HistoryGenerator.Generate(seed, keys: 3, opsPerKey: 5_000, clients: 5);
        var clock = Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(history);
        output.WriteLine($"{history.Count} operations, {history.Count(o => o.Status == OperationStatus.Info)} indeterminate: {result.Verdict} in {clock.ElapsedMilliseconds} ms; steps {string.Join(", ", result.Keys.Select(k => $"{k.Key}={k.SearchSteps}"))}");
        Assert.Equal(Verdict.Ok, result.Verdict);

        // Plant: a read late in k1 returns a value that was overwritten well before it began. (Fewer
        // indeterminate writes here: a violating history is searched exhaustively, and each one
        // pending doubles what the search may try.)
        history = HistoryGenerator.Generate(seed, keys: 2, opsPerKey: 5_000, clients: 5, infoShare: 0.001);
        var random = new Random(seed);
        var reads = history.Where(o => o.Key == "k1" && o.Kind == OperationKind.Read && o.Status == OperationStatus.Ok && o.Value is not null).ToList();
        var victim = reads[reads.Count / 2 + random.Next(reads.Count / 4)];
        var old = history.First(o => o.Key == "k1" && o.Kind == OperationKind.Write && o.Status == OperationStatus.Ok && o.CompleteNs < victim.InvokeNs - 1_000_000 && o.Value != victim.Value);
        var planted = history.Select(o => o.Id == victim.Id ? o with { Value = old.Value } : o).ToList();
        clock.Restart();
        var caught = LinearizabilityChecker.Check(planted);
        output.WriteLine($"planted {victim} reads {old.Value}: {caught.Verdict} in {clock.ElapsedMilliseconds} ms: {string.Join(" | ", caught.Violations.Select(v => v.Explanation))}");
        Assert.Equal(Verdict.Violation, caught.Verdict);
        var violation = Assert.Single(caught.Violations);
        Assert.Equal("k1", violation.Key);
        Assert.Contains(victim.Id, violation.Window);
        Assert.True(violation.Window.Count < 50, $"window of {violation.Window.Count} operations");
    }

    [Fact]
    public void Planted_read_of_a_value_no_write_produced_in_a_generated_history_is_caught()
    {
        var seed = Seed();
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        var history = HistoryGenerator.Generate(seed, keys: 1, opsPerKey: 2_000, clients: 4, infoShare: 0.005);

        // Plant: the write whose value a later read observed wrote something else, so that read saw a value nobody wrote.
        var read = history.Where(o => o.Kind == OperationKind.Read && o.Value is not null).Skip(500).First();
        var planted = history.Select(o => o.Kind == OperationKind.Write && o.Value == read.Value ? o with { Value = "lost" } : o)
            .Select(o => o.Kind == OperationKind.Cas && o.Value == read.Value ? o with { Value = "lost" } : o).ToList();
        var caught = LinearizabilityChecker.Check(planted);
        output.WriteLine(string.Join(" | ", caught.Violations.Select(v => $"{v.Kind}: {v.Explanation}")));
        Assert.Equal(Verdict.Violation, caught.Verdict);
    }
}
