using System.Globalization;

namespace Arbiter.Recipes.Tests;

/// <summary>Seeds, deadlines and condition waits shared by the tests.</summary>
public static class TestSupport
{
    /// <summary>Generous upper bound for anything that should happen "soon" on a loaded 2-core machine.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    /// <summary>The seed of a randomized test: ARBITER_TEST_SEED when set (replay), else fresh; always printed.</summary>
    public static int Seed(ITestOutputHelper output)
    {
        var fromEnv = Environment.GetEnvironmentVariable("ARBITER_TEST_SEED");
        var seed = fromEnv != null ? int.Parse(fromEnv, CultureInfo.InvariantCulture) : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        return seed;
    }

    /// <summary>Re-evaluates <paramref name="condition"/> until true; throws after <paramref name="timeout"/>.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}");
            }

            await Task.Delay(25);
        }
    }

    /// <summary>Awaits <paramref name="task"/> with the standard deadline.</summary>
    public static Task<T> Within<T>(this Task<T> task, TimeSpan? timeout = null) => task.WaitAsync(timeout ?? Deadline);

    /// <summary>Awaits <paramref name="task"/> with the standard deadline.</summary>
    public static Task Within(this Task task, TimeSpan? timeout = null) => task.WaitAsync(timeout ?? Deadline);

    /// <summary>Enumerates <paramref name="source"/> with the standard deadline (cancelled after it).</summary>
    public static System.Runtime.CompilerServices.ConfiguredCancelableAsyncEnumerable<T> Within<T>(this IAsyncEnumerable<T> source) =>
        source.WithCancellation(new CancellationTokenSource(Deadline).Token);
}
