using Arbiter.Client;

namespace Arbiter.Recipes;

/// <summary>Options shared by the lease-bound recipes.</summary>
public sealed record RecipeOptions
{
    /// <summary>
    /// A session to hold keys under. Null (the default) gives every handle its own session, so losing
    /// or releasing one handle never affects another. A shared session makes handles on the same name
    /// share one key (as etcd's Go mutex does), so share one only across different names.
    /// </summary>
    public Session? Session { get; init; }

    /// <summary>TTL of the session a handle creates for itself, in seconds: how long a crashed holder keeps its key.</summary>
    public int SessionTtlSeconds { get; init; } = 60;
}

/// <summary>Timeout helpers used by every recipe.</summary>
internal static class Timeouts
{
    /// <summary>Infinite or a non-negative span; anything else is a caller bug.</summary>
    public static TimeSpan Check(TimeSpan timeout) =>
        timeout == Timeout.InfiniteTimeSpan || timeout >= TimeSpan.Zero
            ? timeout
            : throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "timeout must be non-negative or infinite");

    /// <summary>A token that fires at the timeout, or when any of the others fires.</summary>
    public static CancellationTokenSource Linked(TimeSpan timeout, CancellationToken a, CancellationToken b = default)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(a, b);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            cts.CancelAfter(timeout);
        }

        return cts;
    }

    /// <summary>A short budget for clean-up calls after a wait was abandoned (the caller's token may be cancelled).</summary>
    public static CancellationTokenSource Cleanup() => new(TimeSpan.FromSeconds(5));
}
