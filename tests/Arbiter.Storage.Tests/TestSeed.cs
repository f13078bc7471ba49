using System.Globalization;

namespace Arbiter.Storage.Tests;

/// <summary>Seeds for randomized tests: printed every run, replayable with ARBITER_TEST_SEED.</summary>
internal static class TestSeed
{
    public const string EnvironmentVariable = "ARBITER_TEST_SEED";

    public static int Get(ITestOutputHelper output)
    {
        string? fixedSeed = Environment.GetEnvironmentVariable(EnvironmentVariable);
        int seed = fixedSeed is not null
            ? int.Parse(fixedSeed, CultureInfo.InvariantCulture)
            : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay: {EnvironmentVariable}={seed})");
        return seed;
    }
}
