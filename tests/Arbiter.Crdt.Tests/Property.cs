using System.Globalization;
using CsCheck;

namespace Arbiter.Crdt.Tests;

/// <summary>A property that does not hold: names the seed to replay and what CsCheck shrank the case to.</summary>
public sealed class PropertyFailedException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Runs CsCheck generators from one integer seed, printed every run and replayed with
/// ARBITER_TEST_SEED=n: case i of a run is the same on every machine. A failing case is handed to
/// CsCheck (by its own seed) to shrink it, and the report carries both.
/// </summary>
internal static class Property
{
    public const string SeedVariable = "ARBITER_TEST_SEED";

    public static int Seed(ITestOutputHelper output)
    {
        string? fixedSeed = Environment.GetEnvironmentVariable(SeedVariable);
        int seed = fixedSeed is not null ? int.Parse(fixedSeed, CultureInfo.InvariantCulture) : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay with {SeedVariable}={seed})");
        return seed;
    }

    /// <summary>Checks <paramref name="property"/> on <paramref name="cases"/> generated values; throws <see cref="PropertyFailedException"/> on the first that fails.</summary>
    public static void Check<T>(Gen<T> gen, Action<T> property, ITestOutputHelper output, int cases = 150, int? seed = null)
    {
        int runSeed = seed ?? Seed(output);
        var pcg = new PCG((uint)runSeed, ((ulong)(uint)runSeed * 0x9E3779B97F4A7C15UL) + 1);
        for (int i = 0; i < cases; i++)
        {
            string caseSeed = pcg.ToString();
            var value = gen.Generate(pcg, null!, out _);
            try
            {
                property(value);
            }
            catch (Exception failure) when (failure is not PropertyFailedException)
            {
                throw new PropertyFailedException(
                    $"property failed on case {i} of seed {runSeed} (replay with {SeedVariable}={runSeed}; CsCheck seed \"{caseSeed}\"): {failure.Message}\n{Shrink(gen, property, caseSeed)}",
                    failure);
            }
        }

        output.WriteLine($"{cases} cases held");
    }

    private static string Shrink<T>(Gen<T> gen, Action<T> property, string caseSeed)
    {
        try
        {
            gen.Sample(property, seed: caseSeed, iter: 300, threads: 1);
            return "(CsCheck found no failing case to shrink)";
        }
#pragma warning disable CA1031 // The shrinker's failure is the report.
        catch (Exception shrunk)
#pragma warning restore CA1031
        {
            return "CsCheck shrank it to: " + shrunk.Message;
        }
    }
}
