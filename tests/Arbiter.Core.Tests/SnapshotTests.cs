using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using static Arbiter.Core.Tests.Harness;

namespace Arbiter.Core.Tests;

public class SnapshotTests
{
    private static StateMachine RoundTrip(StateMachine sm, CoreLimits? limits = null)
    {
        using var stream = new MemoryStream();
        sm.WriteSnapshot(stream);
        stream.Position = 0;
        return StateMachine.ReadSnapshot(stream, limits);
    }

    [Fact]
    public void RoundTripKeepsEverything()
    {
        var h = new Harness { TimeMs = 0 };
        h.Grant(10, 7);
        h.Put("a", "1", 7);            // 2
        h.Put("b", "1");               // 3
        h.Delete("b");                 // 4
        h.Put("a", "2", 7);            // 5
        h.Compact(4);
        h.Apply(new Command { RequestId = 5, Put = new PutRequest { Key = B("c"), Value = B("1") } }); // 6
        h.Apply(new Command { Alarm = new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, Alarm = AlarmType.Corrupt, MemberID = 3 } });

        var copy = RoundTrip(h.Sm);
        Assert.Equal(h.Sm.Hash(), copy.Hash());
        Assert.Equal((h.Sm.Revision, h.Sm.CompactRevision, h.Sm.AppliedIndex, h.Sm.SizeBytes), (copy.Revision, copy.CompactRevision, copy.AppliedIndex, copy.SizeBytes));
        Assert.Equal(h.Sm.ReadEvents(4, 100), copy.ReadEvents(4, 100), new SliceComparer());
        Assert.Equal(h.Sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 7, Keys = true }, 500), copy.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = 7, Keys = true }, 500));
        Assert.Equal(h.Sm.Alarms, copy.Alarms);
        Assert.Equal(h.Sm.Range(new RangeRequest { Key = B("a"), Revision = 4 }), copy.Range(new RangeRequest { Key = B("a"), Revision = 4 }));

        // Same future: a remembered id stays remembered, the lease still owns its key.
        var again = copy.Apply(h.Index + 1, new Command { RequestId = 5, Put = new PutRequest { Key = B("c"), Value = B("1") } });
        Assert.Empty(again.Events);
        var revoke = new Command { LeaseExpire = new LeaseExpire(), TimeMs = 100_000 };
        var a = h.Sm.Apply(h.Index + 1, revoke.Clone());
        var b = copy.Apply(h.Index + 2, revoke.Clone());
        Assert.Equal(a.Result, b.Result);
        Assert.Equal(a.Events, b.Events);
    }

    [Fact]
    public void CapturedSnapshotKeepsThePointInTimeWhileTheStateMovesOn()
    {
        var h = new Harness { TimeMs = 0 };
        h.Grant(10, 7);
        h.Put("a", "1", 7);
        h.Put("b", "1");
        h.Put("a", "2", 7);
        h.Apply(new Command { RequestId = 9, Put = new PutRequest { Key = B("c"), Value = B("1") } });
        using var expected = new MemoryStream();
        h.Sm.WriteSnapshot(expected);
        var hashAtCapture = h.Sm.Hash();
        var image = h.Sm.CaptureSnapshot();

        // Everything a snapshot holds changes after the capture: keys, history, compaction, leases, alarms, request ids.
        h.Put("a", "3");
        h.Delete("b");
        h.Put("d", "1", 7);
        h.Compact(h.Sm.Revision - 1);
        h.Revoke(7);
        h.Grant(20, 8);
        h.Apply(new Command { RequestId = 10, Put = new PutRequest { Key = B("e"), Value = B("1") } });
        h.Apply(new Command { Alarm = new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, Alarm = AlarmType.Nospace, MemberID = 1 } });
        Assert.NotEqual(hashAtCapture, h.Sm.Hash());

        using var written = new MemoryStream();
        image.WriteTo(written);
        Assert.Equal(expected.ToArray(), written.ToArray());
        Assert.Equal(hashAtCapture, image.Hash());
        written.Position = 0;
        var copy = StateMachine.ReadSnapshot(written);
        Assert.Equal(hashAtCapture, copy.Hash());
        Assert.Equal(image.AppliedIndex, copy.AppliedIndex);
        Assert.Equal("2", S(copy.Range(new RangeRequest { Key = B("a") }).Kvs.Single().Value));
    }

    /// <summary>
    /// A capture keeps views of the keys' history arrays, not copies: writes after it must never
    /// rewrite an entry the capture can see — neither a compaction dropping a key's old versions,
    /// nor new versions added into a history array's spare room, nor versions paged out.
    /// </summary>
    [Fact]
    public void CapturedHistoriesAreNotRewrittenByLaterWrites()
    {
        var spill = new Mvcc.MemoryValueSpill();
        var h = new Harness(new StateMachine(valueSpill: spill));
        for (var i = 0; i < 5; i++)
        {
            h.Put("k", $"v{i}");   // 5 versions: the history array has room for a 6th
        }

        h.Put("other", "1");
        using var expected = new MemoryStream();
        h.Sm.WriteSnapshot(expected);
        var image = h.Sm.CaptureSnapshot();

        h.Put("k", "v5");          // into the spare room of the array the capture sees
        h.Compact(h.Sm.Revision);  // drops k's first five versions
        h.Put("k", "v6");

        using var written = new MemoryStream();
        image.WriteTo(written);
        Assert.Equal(expected.ToArray(), written.ToArray());
    }

    [Fact]
    public void DamagedSnapshotsAreRefused()
    {
        var h = new Harness();
        h.Put("a", "1");
        using var stream = new MemoryStream();
        h.Sm.WriteSnapshot(stream);
        var bytes = stream.ToArray();
        Assert.Throws<InvalidDataException>(() => StateMachine.ReadSnapshot(new MemoryStream(bytes[..^7])));
        var flipped = (byte[])bytes.Clone();
        flipped[^2] ^= 0xFF; // inside the hash trailer
        Assert.Throws<InvalidDataException>(() => StateMachine.ReadSnapshot(new MemoryStream(flipped)));
        var negativeCount = (byte[])bytes.Clone();
        negativeCount[^5] = 0xFF; // top byte of the remembered-id count
        Assert.Throws<InvalidDataException>(() => StateMachine.ReadSnapshot(new MemoryStream(negativeCount)));
        Assert.Throws<InvalidDataException>(() => StateMachine.ReadSnapshot(new MemoryStream([1, 2, 3, 4, 5, 6, 7, 8, 9])));
    }

    [Fact]
    public void SameCommandsGiveSameHashOnTwoReplicas()
    {
        var a = new Harness();
        var b = new Harness();
        foreach (var h in new[] { a, b })
        {
            h.Grant(5, 1);
            h.Put("x", "1", 1);
            h.Put("y", "2");
            h.Delete("y");
            h.Compact(3);
        }

        Assert.Equal(a.Sm.Hash(), b.Sm.Hash());
        b.Put("z", "3");
        Assert.NotEqual(a.Sm.Hash(), b.Sm.Hash());
    }

    private sealed class SliceComparer : IEqualityComparer<EventHistorySlice>
    {
        public bool Equals(EventHistorySlice? x, EventHistorySlice? y) =>
            x != null && y != null && x.NextRevision == y.NextRevision && x.Events.SequenceEqual(y.Events);

        public int GetHashCode(EventHistorySlice obj) => obj.NextRevision.GetHashCode();
    }
}
