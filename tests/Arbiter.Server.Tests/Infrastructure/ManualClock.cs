using Arbiter.Node;

namespace Arbiter.Server.Tests.Infrastructure;

/// <summary>A clock the test moves by hand, so lease expiry is deterministic.</summary>
public sealed class ManualClock(long startMs = 1_000_000) : IMonotonicClock
{
    private long _nowMs = startMs;

    public long NowMs => Interlocked.Read(ref _nowMs);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _nowMs, (long)by.TotalMilliseconds);
}
