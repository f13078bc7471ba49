using CsCheck;

namespace Arbiter.Crdt.Tests;

/// <summary>The hybrid logical clock: monotonic, causal, bounded drift, and refusal beyond the maximum offset.</summary>
public sealed class HlcTests(ITestOutputHelper output)
{
    [Fact]
    public void NowNeverGoesBackwardsEvenWhenThePhysicalClockDoes()
    {
        var clock = new HybridLogicalClock(maxOffsetMs: 500);
        Assert.Equal(new Hlc(1000, 0), clock.Now(1000));
        Assert.Equal(new Hlc(1000, 1), clock.Now(1000));
        Assert.Equal(new Hlc(1000, 2), clock.Now(900));
        Assert.Equal(new Hlc(1001, 0), clock.Now(1001));
        Assert.Equal(new Hlc(1001, 0), clock.Last);
    }

    [Fact]
    public void ObserveOrdersAfterTheRemoteTimestamp()
    {
        var clock = new HybridLogicalClock(maxOffsetMs: 500);
        clock.Now(1000);
        Assert.Equal(new Hlc(1200, 6), clock.Observe(new Hlc(1200, 5), 1000));
        Assert.Equal(new Hlc(1200, 7), clock.Observe(new Hlc(1200, 2), 1100));
        Assert.Equal(new Hlc(1300, 0), clock.Observe(new Hlc(1200, 9), 1300));
    }

    [Fact]
    public void ObserveRefusesATimestampBeyondTheMaximumOffsetAndChangesNothing()
    {
        var clock = new HybridLogicalClock(maxOffsetMs: 500);
        var before = clock.Now(10_000);
        var refused = Assert.Throws<ClockOffsetException>(() => clock.Observe(new Hlc(10_501, 0), 10_000));
        Assert.Equal(501, refused.OffsetMs);
        Assert.Equal(500, refused.MaxOffsetMs);
        Assert.Contains("maximum offset of 500 ms", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, clock.Last);
        Assert.Equal(new Hlc(10_500, 1), clock.Observe(new Hlc(10_500, 0), 10_000));
        Assert.IsAssignableFrom<CrdtException>(refused);
        Assert.Throws<ClockOffsetException>(() => clock.Observe(new Hlc(long.MaxValue, 0), long.MinValue));
    }

    /// <summary>
    /// Three nodes whose physical clocks are skewed by at most half the maximum offset exchange
    /// messages in a generated order: every timestamp is after the node's previous one and after
    /// the message it received, never behind the node's physical clock, and never more than the
    /// maximum offset ahead of it.
    /// </summary>
    [Fact]
    public void TimestampsAreMonotonicCausalAndWithinTheOffsetOfThePhysicalClock()
    {
        const long maxOffsetMs = 200;
        var events = Gen.Select(Gen.Int[0, 2], Gen.Int[0, 2], Gen.Int[0, 3], Gen.Int[0, 30]).Array[1, 80];
        var skews = Gen.Long[-maxOffsetMs / 2, maxOffsetMs / 2].Array[3];
        Property.Check(Gen.Select(skews, events), input =>
        {
            var (skewMs, steps) = input;
            var clocks = skewMs.Select(_ => new HybridLogicalClock(maxOffsetMs)).ToArray();
            var last = new Hlc[3];
            var mailbox = new List<(int To, Hlc Stamp)>();
            long realMs = 1_000_000;
            foreach (var (node, peer, kind, advanceMs) in steps)
            {
                realMs += advanceMs;
                long physicalMs = realMs + skewMs[node];
                Hlc stamp;
                if (kind == 0 && mailbox.FindIndex(m => m.To == node) is var index and >= 0)
                {
                    var message = mailbox[index];
                    mailbox.RemoveAt(index);
                    stamp = clocks[node].Observe(message.Stamp, physicalMs);
                    Assert.True(stamp > message.Stamp, $"receive {stamp} is not after the message {message.Stamp}");
                }
                else
                {
                    stamp = clocks[node].Now(physicalMs);
                    if (kind == 1)
                    {
                        mailbox.Add((peer, stamp));
                    }
                }

                Assert.True(stamp > last[node], $"node {node}: {stamp} is not after {last[node]}");
                Assert.True(stamp.WallMs >= physicalMs, $"node {node}: {stamp} is behind its physical clock {physicalMs}");
                Assert.True(stamp.WallMs - physicalMs <= maxOffsetMs, $"node {node}: {stamp} is more than {maxOffsetMs} ms ahead of {physicalMs}");
                last[node] = stamp;
            }
        }, output);
    }

    [Fact]
    public void ConvertsToAndFromTheWireTimestamp()
    {
        var hlc = new Hlc(1_700_000_000_123, 42);
        Assert.Equal(hlc, Hlc.FromTimestamp(hlc.ToTimestamp()));
        Assert.Equal(Hlc.Zero, Hlc.FromTimestamp(null));
        Assert.True(new Hlc(5, 0) > new Hlc(4, 99));
        Assert.True(new Hlc(5, 1) > new Hlc(5, 0));
    }
}
