namespace Arbiter.Node.Crdt;

/// <summary>
/// The seam for wall-clock time, read only by the eventual tier's hybrid logical clock (leases and
/// every CP timer use <see cref="IMonotonicClock"/>). Tests skew a member's clock with libfaketime or
/// with an implementation of this interface.
/// </summary>
public interface IWallClock
{
    /// <summary>Milliseconds since the Unix epoch; may jump (NTP), which the HLC absorbs.</summary>
    long NowUnixMs { get; }
}

/// <summary>The machine's wall clock.</summary>
public sealed class SystemWallClock : IWallClock
{
    /// <summary>The shared instance.</summary>
    public static readonly SystemWallClock Instance = new();

    private SystemWallClock()
    {
    }

    /// <inheritdoc />
    public long NowUnixMs => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
}
