using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt.Tests;

/// <summary>What each type does under concurrency, as scripts between named replicas.</summary>
public sealed class SemanticsTests
{
    private static readonly ReplicaId Alice = new(1);
    private static readonly ReplicaId Bob = new(2);
    private static readonly ReplicaId Carol = new(3);

    private static CrdtState Do(CrdtState state, CrdtOperation operation, ReplicaId replica, Hlc stamp = default) =>
        CrdtMutator.Apply(state, operation, replica, stamp, CrdtLimits.Default);

    private static CrdtState Local(CrdtState state, CrdtOperation operation, ReplicaId replica, Hlc stamp = default) =>
        state.Join(Do(state, operation, replica, stamp));

    [Fact]
    public void CountersSumEveryReplicasIncrements()
    {
        var empty = CrdtState.Empty(CrdtType.PnCounter);
        var a = Local(Local(empty, Ops.Add(7), Alice), Ops.Add(-2), Alice);
        var b = Local(empty, Ops.Add(3), Bob);
        var c = Local(b, Ops.Add(-10), Carol);
        Assert.Equal(-2, a.Join(b).Join(c).ToValue().Counter);
        Assert.Equal(-2, c.Join(a).ToValue().Counter);

        var g = Local(Local(CrdtState.Empty(CrdtType.GCounter), Ops.Add(5), Alice), Ops.Add(6), Alice);
        var h = Local(CrdtState.Empty(CrdtType.GCounter), Ops.Add(4), Bob);
        Assert.Equal(15, g.Join(h).ToValue().Counter);
    }

    [Fact]
    public void CounterDeltaCarriesTheRunningTotalSoAnOldDeltaArrivingLateChangesNothing()
    {
        var s0 = CrdtState.Empty(CrdtType.GCounter);
        var d1 = Do(s0, Ops.Add(5), Alice);
        var s1 = s0.Join(d1);
        var d2 = Do(s1, Ops.Add(1), Alice);
        var remote = CrdtState.Empty(CrdtType.GCounter).Join(d2);
        Assert.Equal(6, remote.ToValue().Counter);
        Assert.Equal(6, remote.Join(d1).ToValue().Counter);
    }

    [Fact]
    public void OrSetAddWinsOverAConcurrentRemoveAndAnObservedRemoveSticks()
    {
        var add = Do(CrdtState.Empty(CrdtType.OrSet), Ops.SetAdd("book"), Alice);
        var alice = CrdtState.Empty(CrdtType.OrSet).Join(add);
        var bob = CrdtState.Empty(CrdtType.OrSet).Join(add);

        var remove = Do(alice, Ops.SetRemove("book"), Alice);
        alice = alice.Join(remove);
        var readd = Do(bob, Ops.SetAdd("book"), Bob);
        bob = bob.Join(readd);
        Assert.Empty(Ops.Elements(alice));
        Assert.Equal(["book"], Ops.Elements(alice.Join(bob)));
        Assert.Equal(["book"], Ops.Elements(bob.Join(alice)));

        // Now a remove that has seen both adds sticks, even if old adds are delivered again.
        var merged = alice.Join(bob);
        var removeAll = Do(merged, Ops.SetRemove("book"), Carol);
        var final = merged.Join(removeAll).Join(add).Join(readd);
        Assert.Empty(Ops.Elements(final));
        Assert.Empty(Ops.Elements(CrdtState.Empty(CrdtType.OrSet).Join(removeAll).Join(readd).Join(add)));
    }

    [Fact]
    public void OrSetValueIsSortedByBytes()
    {
        var set = Local(CrdtState.Empty(CrdtType.OrSet), Ops.SetAdd("pear", "apple", "Zebra", "apple"), Alice);
        Assert.Equal(["Zebra", "apple", "pear"], Ops.Elements(set));
    }

    [Fact]
    public void FlagEnableWinsOverAConcurrentDisable()
    {
        var on = Local(CrdtState.Empty(CrdtType.Flag), Ops.Flag(true), Alice);
        var off = Local(on, Ops.Flag(false), Alice);
        var onAgain = Local(on, Ops.Flag(true), Bob);
        Assert.False(off.ToValue().Flag);
        Assert.True(off.Join(onAgain).ToValue().Flag);
        var offAfterSeeingAll = Local(off.Join(onAgain), Ops.Flag(false), Carol);
        Assert.False(offAfterSeeingAll.Join(on).Join(onAgain).ToValue().Flag);
    }

    [Fact]
    public void MvRegisterKeepsTrulyConcurrentWritesAsSiblingsAndAWriteWithTheReadsContextReplacesThem()
    {
        var empty = CrdtState.Empty(CrdtType.MvRegister);
        var alice = Local(empty, Ops.Assign("red"), Alice);
        var bob = Local(empty, Ops.Assign("blue"), Bob);
        var merged = alice.Join(bob);
        Assert.Equal(["blue", "red"], Ops.Siblings(merged));

        var read = merged.ToValue().Mv;
        var resolved = Local(merged, Ops.Assign("purple", read.Context), Carol);
        Assert.Equal(["purple"], Ops.Siblings(resolved));
        Assert.Equal(["purple"], Ops.Siblings(resolved.Join(alice).Join(bob)));
    }

    [Fact]
    public void MvRegisterWriteReplacesExactlyTheSiblingsItsContextCovers()
    {
        var empty = CrdtState.Empty(CrdtType.MvRegister);
        var merged = Local(empty, Ops.Assign("red"), Alice).Join(Local(empty, Ops.Assign("blue"), Bob));
        var context = merged.ToValue().Mv.Context;

        // A write concurrent with the read (not in its context) survives the resolution.
        var concurrent = Local(merged, Ops.Assign("green"), Bob);
        var resolution = Do(merged, Ops.Assign("purple", context), Alice);
        Assert.Equal(["green", "purple"], Ops.Siblings(concurrent.Join(resolution)));

        // A blind write is kept beside every sibling.
        Assert.Equal(["blue", "red", "yellow"], Ops.Siblings(Local(merged, Ops.Assign("yellow"), Carol)));
    }

    [Fact]
    public void MvRegisterContextReadAtOneMemberResolvesAtAnother()
    {
        var empty = CrdtState.Empty(CrdtType.MvRegister);
        var write = Do(empty, Ops.Assign("draft"), Alice);
        var alice = empty.Join(write);
        var context = alice.ToValue().Mv.Context;

        // Bob has not received Alice's write yet; the client read it at Alice and writes at Bob.
        var resolution = Do(empty, Ops.Assign("final", context), Bob);
        var bob = empty.Join(resolution).Join(write);
        Assert.Equal(["final"], Ops.Siblings(bob));
        Assert.Equal(["final"], Ops.Siblings(alice.Join(resolution)));
    }

    [Fact]
    public void OrMapRemoveDropsObservedStateAndAConcurrentUpdateKeepsTheField()
    {
        var empty = CrdtState.Empty(CrdtType.OrMap);
        var shared = Local(empty, Ops.Update("likes", CrdtType.PnCounter, Ops.Add(5)), Alice);
        shared = Local(shared, Ops.Update("tags", CrdtType.OrSet, Ops.SetAdd("x")), Alice);

        var alice = Local(shared, Ops.Remove("likes", "tags"), Alice);
        Assert.Empty(alice.ToValue().Map.Entries);
        var bob = Local(shared, Ops.Update("likes", CrdtType.PnCounter, Ops.Add(3)), Bob);

        var merged = alice.Join(bob);
        var entry = Assert.Single(merged.ToValue().Map.Entries);
        Assert.Equal("likes", Ops.S(entry.Field));
        Assert.Equal(CrdtType.PnCounter, entry.Value.Type);
        Assert.Equal(3, entry.Value.Counter);
        Assert.Equal(merged, bob.Join(alice));
    }

    [Fact]
    public void OrMapNestsMapsAndMvContextsWorkInsideThem()
    {
        var empty = CrdtState.Empty(CrdtType.OrMap);
        var profile = Ops.Update("profile", CrdtType.OrMap, Ops.Update("colour", CrdtType.MvRegister, Ops.Assign("red")));
        var alice = Local(empty, profile, Alice);
        var bob = Local(empty, Ops.Update("profile", CrdtType.OrMap, Ops.Update("colour", CrdtType.MvRegister, Ops.Assign("blue"))), Bob);
        var merged = alice.Join(bob);
        var colour = merged.ToValue().Map.Entries.Single().Value.Map.Entries.Single().Value.Mv;
        Assert.Equal(["blue", "red"], colour.Siblings.Select(Ops.S));

        var resolved = Local(merged, Ops.Update("profile", CrdtType.OrMap, Ops.Update("colour", CrdtType.MvRegister, Ops.Assign("purple", colour.Context))), Carol);
        var after = resolved.ToValue().Map.Entries.Single().Value.Map.Entries.Single().Value.Mv;
        Assert.Equal(["purple"], after.Siblings.Select(Ops.S));
    }

    [Fact]
    public void OrMapFieldsCreatedConcurrentlyWithDifferentTypesAreBothKept()
    {
        var empty = CrdtState.Empty(CrdtType.OrMap);
        var alice = Local(empty, Ops.Update("x", CrdtType.GCounter, Ops.Add(1)), Alice);
        var bob = Local(empty, Ops.Update("x", CrdtType.Flag, Ops.Flag(true)), Bob);
        var entries = alice.Join(bob).ToValue().Map.Entries;
        Assert.Equal([CrdtType.GCounter, CrdtType.Flag], entries.Select(e => e.Value.Type));
        Assert.All(entries, e => Assert.Equal("x", Ops.S(e.Field)));
    }

    [Fact]
    public void LwwRegisterTiesAreBrokenByTheHigherReplicaId()
    {
        var stamp = new Hlc(1000, 0);
        var empty = CrdtState.Empty(CrdtType.LwwRegister);
        var low = Local(empty, Ops.Assign("from-1"), Alice, stamp);
        var high = Local(empty, Ops.Assign("from-3"), Carol, stamp);
        Assert.Equal("from-3", Ops.S(low.Join(high).ToValue().Lww.Value));
        Assert.Equal("from-3", Ops.S(high.Join(low).ToValue().Lww.Value));
        Assert.False(empty.ToValue().Lww.Assigned);
    }

    /// <summary>
    /// The seed's clock-skew case (reference notes, section 7): Alice's clock runs 300 ms ahead.
    /// With wall-clock stamps the causally later write through Bob loses; with HLC stamps and the
    /// client's causal token it wins.
    /// </summary>
    [Fact]
    public void HlcLwwKeepsTheCausallyLaterWriteThatWallClockLwwLoses()
    {
        const long skewMs = 300;
        const long realFirstWriteMs = 10_000;
        const long realSecondWriteMs = 10_150;
        var empty = CrdtState.Empty(CrdtType.LwwRegister);

        // Alice (clock +300 ms) takes the first write at real time 10.000 s.
        var aliceClock = new HybridLogicalClock(maxOffsetMs: 500);
        var first = Do(empty, Ops.Assign("[book]"), Alice, aliceClock.Now(realFirstWriteMs + skewMs));
        var token = Hlc.FromTimestamp(empty.Join(first).ToValue().Lww.Stamp);
        Assert.Equal(new Hlc(10_300, 0), token);

        // The client read [book] and adds a pen through Bob (correct clock), who has not merged the first write.
        var bobClock = new HybridLogicalClock(maxOffsetMs: 500);
        var hlcStamp = bobClock.Observe(token, realSecondWriteMs);
        Assert.Equal(new Hlc(10_300, 1), hlcStamp);
        var hlcSecond = Do(empty, Ops.Assign("[book, pen]"), Bob, hlcStamp);
        Assert.Equal("[book, pen]", Ops.S(first.Join(hlcSecond).ToValue().Lww.Value));
        Assert.Equal("[book, pen]", Ops.S(hlcSecond.Join(first).ToValue().Lww.Value));

        // Plain wall-clock LWW stamps Bob's write with his physical time: 10.150 < 10.300, so the
        // acknowledged, causally later write is silently discarded on every replica.
        var wallSecond = Do(empty, Ops.Assign("[book, pen]"), Bob, new Hlc(realSecondWriteMs, 0));
        Assert.Equal("[book]", Ops.S(first.Join(wallSecond).ToValue().Lww.Value));
        Assert.Equal("[book]", Ops.S(wallSecond.Join(first).ToValue().Lww.Value));
    }

    [Fact]
    public void MaxStampReportsTheHighestLwwStampIncludingNestedOnes()
    {
        var map = Local(CrdtState.Empty(CrdtType.OrMap), Ops.Update("n", CrdtType.LwwRegister, Ops.Assign("v")), Alice, new Hlc(77, 3));
        Assert.Equal(new Hlc(77, 3), map.MaxStamp);
        Assert.Equal(Hlc.Zero, CrdtState.Empty(CrdtType.LwwRegister).MaxStamp);
    }

    [Fact]
    public void AnOperationThatChangesNothingGivesTheEmptyDelta()
    {
        var counter = CrdtState.Empty(CrdtType.PnCounter);
        Assert.True(Do(counter, Ops.Add(0), Alice).IsEmpty);
        var set = CrdtState.Empty(CrdtType.OrSet);
        Assert.True(Do(set, Ops.SetRemove("absent"), Alice).IsEmpty);
        Assert.False(Do(set, Ops.SetAdd("present"), Alice).IsEmpty);
    }
}
