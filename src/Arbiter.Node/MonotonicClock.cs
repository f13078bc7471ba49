namespace Arbiter.Node;

/// <summary>The one seam for time: a monotonic clock in milliseconds.</summary>
public interface IMonotonicClock
{
    /// <summary>Milliseconds since an arbitrary fixed point; never goes backwards.</summary>
    long NowMs { get; }
}

/// <summary>The machine's monotonic clock (<see cref="Environment.TickCount64"/>).</summary>
public sealed class SystemMonotonicClock : IMonotonicClock
{
    /// <summary>The shared instance.</summary>
    public static readonly SystemMonotonicClock Instance = new();

    private SystemMonotonicClock()
    {
    }

    /// <inheritdoc />
    public long NowMs => Environment.TickCount64;
}
