namespace Arbiter.Node;

/// <summary>
/// The deadline of the client call being served, carried along its async flow as
/// <see cref="Auth.CallIdentity"/> is: the API layer sets it once per call (null: the client set
/// none). A cluster member answers a write or a linearizable read that could not finish with etcd's
/// error (<c>request timed out</c>, <c>... possibly due to previous leader failure</c>,
/// <c>no leader</c>) shortly before that deadline, as etcd's server does when the context it
/// serves the call under ends, instead of letting the client run into its own deadline and learn
/// nothing about why.
/// </summary>
public static class CallDeadline
{
    /// <summary>The most a call's answer is moved ahead of its deadline; a short deadline moves it by a quarter.</summary>
    public const int MarginMsMax = 250;

    private static readonly AsyncLocal<Holder?> CurrentHolder = new();

    /// <summary>The deadline (UTC) of the call in progress, or null.</summary>
    public static DateTime? Current => CurrentHolder.Value?.Deadline is > 0 and var ticks ? new DateTime(ticks, DateTimeKind.Utc) : null;

    /// <summary>
    /// Sets the deadline for the call served in this async flow until the scope is disposed. A
    /// background task started during the call captures the flow; once the call has ended it sees
    /// no deadline, not that call's (which has passed).
    /// </summary>
    public static IDisposable Enter(DateTime? deadlineUtc)
    {
        var holder = new Holder(deadlineUtc?.ToUniversalTime().Ticks ?? 0);
        CurrentHolder.Value = holder;
        return holder;
    }

    /// <summary>Ticks of the deadline, 0 for none: one word, so a task reading it while the call ends never sees half of it.</summary>
    private sealed class Holder(long deadlineTicks) : IDisposable
    {
        private long _deadlineTicks = deadlineTicks;

        public long Deadline => Volatile.Read(ref _deadlineTicks);

        public void Dispose() => Volatile.Write(ref _deadlineTicks, 0);
    }

    /// <summary>
    /// How long the call in progress may still wait for its answer: <paramref name="requestTimeout"/>,
    /// or less when the client's deadline comes first (minus a margin so that the answer reaches
    /// the client before its deadline does; never below zero).
    /// </summary>
    public static TimeSpan Budget(TimeSpan requestTimeout, DateTime nowUtc)
    {
        if (Current is not { } deadline)
        {
            return requestTimeout;
        }

        var remaining = deadline - nowUtc;
        if (remaining <= TimeSpan.Zero)
        {
            return TimeSpan.Zero;
        }

        var margin = TimeSpan.FromMilliseconds(Math.Min(MarginMsMax, remaining.TotalMilliseconds / 4));
        var budget = remaining - margin;
        return budget < requestTimeout ? budget : requestTimeout;
    }
}
