using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using static Arbiter.Core.Tests.Harness;

namespace Arbiter.Core.Tests;

public class HistoryTests
{
    [Fact]
    public void ReadEventsReturnsWholeRevisions()
    {
        var h = new Harness();
        h.Put("a", "1"); // 2
        var txn = new TxnRequest();
        txn.Success.Add(OpPut("b", "1"));
        txn.Success.Add(OpPut("c", "1"));
        h.Txn(txn);      // 3 (two events)
        h.Delete("a");   // 4
        var all = h.Sm.ReadEvents(1, 100);
        Assert.Equal([2L, 3L, 3L, 4L], all.Events.Select(e => e.Kv.ModRevision));
        Assert.Equal(5, all.NextRevision);

        var first = h.Sm.ReadEvents(2, 2); // revision 3 would make 3 events: stop before it
        Assert.Equal([2L], first.Events.Select(e => e.Kv.ModRevision));
        Assert.Equal(3, first.NextRevision);
        var second = h.Sm.ReadEvents(3, 1); // never split a revision, always make progress
        Assert.Equal([3L, 3L], second.Events.Select(e => e.Kv.ModRevision));
        Assert.Equal(4, second.NextRevision);
        var none = h.Sm.ReadEvents(5, 10);
        Assert.Empty(none.Events);
        Assert.Equal(5, none.NextRevision);
    }

    [Fact]
    public void CompactionKeepsLatestVersionAtOrBelowTheRevision()
    {
        var h = new Harness();
        h.Put("a", "1"); // 2
        h.Put("a", "2"); // 3
        h.Put("b", "1"); // 4
        h.Delete("b");   // 5
        h.Put("a", "3"); // 6
        var r = h.Compact(5);
        Assert.Equal(6, r.Header.Revision);
        Assert.Equal(6, h.Sm.Revision); // compaction does not advance the revision
        Assert.Equal(5, h.Sm.CompactRevision);
        Assert.Equal("2", S(h.Get("a", revision: 5).Kvs.Single().Value));
        Assert.Empty(h.Get("b", revision: 5).Kvs);
        AssertThrows(EtcdError.Compacted, () => h.Get("a", revision: 4));
        AssertError(EtcdError.Compacted, h.Error(new Command { Compaction = new CompactionRequest { Revision = 5 } }));
        AssertError(EtcdError.Compacted, h.Error(new Command { Compaction = new CompactionRequest { Revision = 3 } }));
        AssertError(EtcdError.FutureRevision, h.Error(new Command { Compaction = new CompactionRequest { Revision = 7 } }));
        Assert.Equal(1, h.Sm.KeyCountIndexed); // b is gone from the index entirely
    }

    [Fact]
    public void WatchRuleStartAtCompactRevisionIsServedBelowIsCompacted()
    {
        var h = new Harness();
        h.Put("a", "1"); // 2
        h.Put("a", "2"); // 3
        h.Put("a", "3"); // 4
        h.Compact(3);
        Assert.Equal([3L, 4L], h.Sm.ReadEvents(3, 10).Events.Select(e => e.Kv.ModRevision));
        AssertThrows(EtcdError.Compacted, () => h.Sm.ReadEvents(2, 10));
    }

    [Fact]
    public void HashKvBounds()
    {
        var h = new Harness();
        h.Put("a", "1");
        h.Put("a", "2");
        var at2 = h.Sm.HashKv(2);
        Assert.Equal(2, at2.Revision);
        Assert.NotEqual(at2.Hash, h.Sm.HashKv(0).Hash);
        Assert.Equal(3, h.Sm.HashKv(0).Revision);
        AssertThrows(EtcdError.FutureRevision, () => h.Sm.HashKv(4));
        h.Compact(2);
        AssertThrows(EtcdError.Compacted, () => h.Sm.HashKv(2));
        Assert.Equal(2, h.Sm.HashKv(3).CompactRevision);
    }

    [Fact]
    public void CompactingARevisionWithDeletesKeepsIndexConsistent()
    {
        var h = new Harness();
        h.Put("a", "1"); // 2
        h.Delete("a");   // 3
        h.Compact(3);
        h.Put("a", "2"); // 4 — a fresh record
        h.Compact(4);    // walks history entry 3 (the old record) and 4
        Assert.Equal("2", h.Value("a"));
        Assert.Equal(1, h.Sm.KeyCountIndexed);
    }
}

public class AlarmAndDedupTests
{
    [Fact]
    public void DuplicateRequestIdIsAppliedOnce()
    {
        var h = new Harness();
        var put = new Command { RequestId = 77, Put = new PutRequest { Key = B("a"), Value = B("1") } };
        var first = h.Apply(put.Clone());
        Assert.Single(h.LastEvents);
        var second = h.Apply(put.Clone());
        Assert.Empty(h.LastEvents);
        Assert.Equal(first, second);
        Assert.Equal(2, h.Sm.Revision);
        Assert.Equal(2, h.Sm.AppliedIndex);
    }

    [Fact]
    public void RememberedIdsAreForgottenFifo()
    {
        var h = new Harness(new StateMachine(new CoreLimits { RequestIdsRememberedMax = 2 }));
        for (ulong id = 1; id <= 3; id++)
        {
            h.Apply(new Command { RequestId = id, Put = new PutRequest { Key = B("a"), Value = B("x") } });
        }

        h.Apply(new Command { RequestId = 1, Put = new PutRequest { Key = B("a"), Value = B("x") } });
        Assert.Single(h.LastEvents); // id 1 was forgotten, so it applied again
        h.Apply(new Command { RequestId = 3, Put = new PutRequest { Key = B("a"), Value = B("x") } });
        Assert.Empty(h.LastEvents);
    }

    [Fact]
    public void NoSpaceAlarmBlocksPutsAndGrantsButNotDeletes()
    {
        var h = new Harness();
        h.Put("a", "1");
        var activate = new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, Alarm = AlarmType.Nospace, MemberID = 9 };
        Assert.Single(Ok(h.Apply(new Command { Alarm = activate })).Alarm.Alarms);
        AssertError(EtcdError.NoSpace, h.Error(new Command { Put = new PutRequest { Key = B("b") } }));
        AssertError(EtcdError.NoSpace, h.Error(new Command { LeaseGrant = new LeaseGrantRequest { TTL = 5 } }));
        var txn = new TxnRequest();
        txn.Success.Add(OpPut("b", "1"));
        AssertError(EtcdError.NoSpace, h.Error(new Command { Txn = txn }));
        var deleteTxn = new TxnRequest();
        deleteTxn.Success.Add(OpDelete("a"));
        Assert.True(h.Txn(deleteTxn).Succeeded);
        h.Compact(2);
        var get = Ok(h.Apply(new Command { Alarm = new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get } })).Alarm;
        Assert.Equal((9UL, AlarmType.Nospace), (get.Alarms.Single().MemberID, get.Alarms.Single().Alarm));
        h.Apply(new Command { Alarm = new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Deactivate, Alarm = AlarmType.Nospace, MemberID = 9 } });
        h.Put("b", "1");
    }

    [Fact]
    public void QuotaRefusesWritesAndRaisesNoSpace()
    {
        var h = new Harness(new StateMachine(new CoreLimits { QuotaBytes = 1_000 }));
        h.Put("a", new string('x', 300)); // ~557 bytes
        AssertError(EtcdError.NoSpace, h.Error(new Command { Put = new PutRequest { Key = B("b"), Value = B(new string('x', 300)) } }));
        Assert.Null(h.Value("b"));
        Assert.Equal(AlarmType.Nospace, h.Sm.Alarms.Single().Alarm);
    }

    [Fact]
    public void CorruptAlarmBlocksClientWrites()
    {
        var h = new Harness();
        h.Apply(new Command { Alarm = new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, Alarm = AlarmType.Corrupt } });
        AssertError(CoreErrors.Corrupt, h.Error(new Command { Put = new PutRequest { Key = B("b") } }));
        AssertError(CoreErrors.Corrupt, h.Error(new Command { DeleteRange = new DeleteRangeRequest { Key = B("b") } }));
        Assert.Empty(h.Get("b").Kvs); // reads still work, as in etcd
    }
}

public class CorruptReadOnlyTxnTests
{
    [Fact]
    public void ReadOnlyTxnStillServedUnderCorrupt()
    {
        var h = new Harness();
        h.Put("a", "1");
        h.Apply(new Command { Alarm = new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, Alarm = AlarmType.Corrupt } });
        var read = new TxnRequest();
        read.Success.Add(Harness.OpGet("a"));
        Assert.Equal("1", Harness.S(h.Txn(read).Responses[0].ResponseRange.Kvs[0].Value));
        var write = new TxnRequest();
        write.Success.Add(Harness.OpPut("a", "2"));
        Harness.AssertError(CoreErrors.Corrupt, h.Error(new Command { Txn = write }));
    }
}

public class CompactRevisionEventsTests
{
    [Fact]
    public void EventsAtTheCompactRevisionIncludeItsDeletes()
    {
        var h = new Harness();
        h.Put("a", "1"); // 2
        h.Delete("a");   // 3
        h.Compact(3);
        var events = h.Sm.ReadEvents(3, 10).Events;
        var e = Assert.Single(events);
        Assert.Equal(Protocol.Mvcc.Event.Types.EventType.Delete, e.Type);
        Assert.Equal("1", Harness.S(e.PrevKv.Value));
    }
}

public class WatchPrevKvTests
{
    /// <summary>
    /// etcd fills a watch event's prev_kv from the store at the revision before the write, and
    /// leaves it empty for a creation — not from an earlier change inside the same txn.
    /// </summary>
    [Fact]
    public void PrevKvIsTheStateBeforeTheTxnAndAbsentForCreations()
    {
        var h = new Harness();
        h.Put("k", "1"); // 2
        h.Put("k", "2"); // 3
        // A "\0" range_end delete escapes etcd's duplicate-key check, so put-then-delete of one key
        // in one txn is possible (the differential test against etcd found this case).
        var txn = new TxnRequest();
        txn.Success.Add(OpPut("k", "3"));
        txn.Success.Add(OpDelete("k", "\0"));
        var error = RequestValidator.Validate(txn, new CoreLimits());
        Assert.Null(error);
        h.Txn(txn); // 4: put k=3 (version 3), then delete k

        var events = h.Sm.ReadEvents(4, 10).Events;
        Assert.Equal([Event.Types.EventType.Put, Event.Types.EventType.Delete], events.Select(e => e.Type));
        Assert.Equal("2", S(events[0].PrevKv.Value));
        Assert.Equal(3, events[1].PrevKv.ModRevision); // the version before the txn, not the txn's own put
        Assert.Equal("2", S(events[1].PrevKv.Value));

        h.Put("k", "4"); // 5: a creation again (version 1): no prev_kv
        var create = h.Sm.ReadEvents(5, 10).Events.Single();
        Assert.Equal(1, create.Kv.Version);
        Assert.Null(create.PrevKv);
    }
}
