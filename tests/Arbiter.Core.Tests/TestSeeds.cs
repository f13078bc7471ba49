namespace Arbiter.Core.Tests;

/// <summary>Seeds for the randomized tests: ARBITER_TEST_SEED=n replays one, otherwise the given defaults run.</summary>
internal static class TestSeeds
{
    public static TheoryData<int> FromEnvironmentOr(params int[] defaults)
    {
        var env = Environment.GetEnvironmentVariable("ARBITER_TEST_SEED");
        return env != null && int.TryParse(env, out var seed) ? new TheoryData<int> { seed } : new TheoryData<int>(defaults);
    }
}
