namespace Arbiter.Crdt;

/// <summary>
/// A hybrid logical clock (Kulkarni, Demirbas et al. 2014). It holds no clock of its own: the caller
/// passes the physical wall time (the clock seam), so tests can skew it. Timestamps never go
/// backwards, an event after an observed one is stamped after it, and the wall part stays within
/// the maximum offset of the physical clocks because a remote timestamp further ahead than that
/// is refused with <see cref="ClockOffsetException"/>, never adopted. Thread-safe.
/// </summary>
public sealed class HybridLogicalClock
{
    private readonly Lock _gate = new();
    private Hlc _last;

    /// <summary>A clock that refuses remote timestamps more than <paramref name="maxOffsetMs"/> ahead.</summary>
    /// <param name="maxOffsetMs">The largest accepted lead of a remote timestamp over the local physical time, in milliseconds (CockroachDB uses 500).</param>
    public HybridLogicalClock(long maxOffsetMs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxOffsetMs);
        MaxOffsetMs = maxOffsetMs;
    }

    /// <summary>The largest accepted lead of a remote timestamp over the local physical time, in milliseconds.</summary>
    public long MaxOffsetMs { get; }

    /// <summary>The last timestamp this clock issued or adopted.</summary>
    public Hlc Last
    {
        get
        {
            lock (_gate)
            {
                return _last;
            }
        }
    }

    /// <summary>A timestamp for a local or send event: after every earlier one, at least the physical time.</summary>
    /// <param name="physicalWallMs">The local physical clock, in milliseconds since the Unix epoch.</param>
    public Hlc Now(long physicalWallMs)
    {
        lock (_gate)
        {
            var next = physicalWallMs > _last.WallMs
                ? new Hlc(physicalWallMs, 0)
                : new Hlc(_last.WallMs, Increment(_last.Logical));
            _last = next;
            return next;
        }
    }

    /// <summary>
    /// A timestamp for receiving <paramref name="remote"/> (a peer's message or a client's causal
    /// token): after both it and every earlier local timestamp.
    /// </summary>
    /// <param name="remote">The timestamp received.</param>
    /// <param name="physicalWallMs">The local physical clock, in milliseconds since the Unix epoch.</param>
    /// <exception cref="ClockOffsetException">The remote wall time is more than the maximum offset ahead of <paramref name="physicalWallMs"/>; nothing changed.</exception>
    public Hlc Observe(Hlc remote, long physicalWallMs)
    {
        if ((Int128)remote.WallMs - physicalWallMs > MaxOffsetMs)
        {
            throw new ClockOffsetException(remote, physicalWallMs, MaxOffsetMs);
        }

        lock (_gate)
        {
            long previousWallMs = _last.WallMs;
            long wallMs = Math.Max(Math.Max(previousWallMs, remote.WallMs), physicalWallMs);
            uint logical;
            if (wallMs == previousWallMs && wallMs == remote.WallMs)
            {
                logical = Increment(Math.Max(_last.Logical, remote.Logical));
            }
            else if (wallMs == previousWallMs)
            {
                logical = Increment(_last.Logical);
            }
            else if (wallMs == remote.WallMs)
            {
                logical = Increment(remote.Logical);
            }
            else
            {
                logical = 0;
            }

            _last = new Hlc(wallMs, logical);
            return _last;
        }
    }

    private static uint Increment(uint logical) =>
        logical == uint.MaxValue
            ? throw new CrdtException("hybrid logical clock: the logical counter would overflow (the wall part has not advanced for 2^32 events); refused")
            : logical + 1;
}
