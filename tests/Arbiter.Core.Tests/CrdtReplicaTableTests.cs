using Arbiter.Protocol.Internal;

namespace Arbiter.Core.Tests;

/// <summary>The CRDT replica table: announcements and departures through the log, in snapshots, bad input refused.</summary>
public class CrdtReplicaTableTests
{
    private static Command Announce(ulong member, ulong replica) =>
        new() { CrdtReplica = new CrdtReplicaCommand { Announce = new CrdtReplicaAnnounce { MemberId = member, ReplicaId = replica } } };

    private static Command Depart(ulong member, ulong pruner) =>
        new() { CrdtReplica = new CrdtReplicaCommand { Depart = new CrdtReplicaDepart { MemberId = member, PrunerMemberId = pruner } } };

    [Fact]
    public void AnnouncementsAndDeparturesAreAppliedOnceAndSurviveASnapshot()
    {
        var h = new Harness { TimeMs = 0 };
        var revision = h.Sm.Revision;
        Assert.True(h.Apply(Announce(1, 100)).CrdtReplica.Changed);
        Assert.True(h.Apply(Announce(2, 200)).CrdtReplica.Changed);
        Assert.True(h.Apply(Announce(2, 201)).CrdtReplica.Changed); // a wiped member comes back as a new replica
        Assert.False(h.Apply(Announce(3, 100)).CrdtReplica.Changed); // a replica never changes member
        Assert.True(h.Apply(Depart(2, 1)).CrdtReplica.Changed);
        Assert.False(h.Apply(Depart(2, 3)).CrdtReplica.Changed); // the pruner, once named, stays
        Assert.Equal(revision, h.Sm.Revision);
        CrdtReplicaRecord[] expected = [new(100, 1, 0), new(200, 2, 1), new(201, 2, 1)];
        Assert.Equal(expected, h.Sm.CrdtReplicas);

        using var stream = new MemoryStream();
        h.Sm.WriteSnapshot(stream);
        stream.Position = 0;
        var copy = StateMachine.ReadSnapshot(stream);
        Assert.Equal(expected, copy.CrdtReplicas);
        Assert.Equal(h.Sm.Hash(), copy.Hash());
        Assert.NotEqual(new Harness().Sm.Hash(), copy.Hash());
    }

    private static Command Pruned(ulong replica, ulong member) =>
        new() { CrdtReplica = new CrdtReplicaCommand { Pruned = new CrdtReplicaPruned { ReplicaId = replica, MemberId = member } } };

    [Fact]
    public void ADepartedReplicaIsRetiredOnceItsPrunerAndEveryRemainingMemberHoldItPrunedAndThatSurvivesASnapshot()
    {
        var h = new Harness { TimeMs = 0 };
        h.Apply(Announce(1, 100));
        h.Apply(Announce(2, 200));
        h.Apply(Announce(3, 300));
        h.Apply(Announce(4, 400));
        h.Apply(Depart(4, 1));

        // Nobody before the pruner; a repeated acknowledgement changes nothing.
        Assert.NotNull(h.Apply(Pruned(400, 2)).Error);
        Assert.True(h.Apply(Pruned(400, 1)).CrdtReplica.Changed);
        Assert.False(h.Apply(Pruned(400, 1)).CrdtReplica.Changed);
        Assert.True(h.Apply(Pruned(400, 2)).CrdtReplica.Changed);
        Assert.False(h.Sm.CrdtReplicas.Single(r => r.ReplicaId == 400).Retired);

        // A snapshot in the middle keeps the acknowledgements.
        using (var stream = new MemoryStream())
        {
            h.Sm.WriteSnapshot(stream);
            stream.Position = 0;
            var copy = StateMachine.ReadSnapshot(stream);
            Assert.Equal([1UL, 2UL], copy.CrdtReplicas.Single(r => r.ReplicaId == 400).PrunedByMemberIds!);
            Assert.Equal(h.Sm.Hash(), copy.Hash());
        }

        // Member 3 leaves before acknowledging: the remaining members (1, 2) all hold it pruned.
        h.Apply(Depart(3, 2));
        var retired = h.Sm.CrdtReplicas.Single(r => r.ReplicaId == 400);
        Assert.True(retired.Retired);
        Assert.False(h.Sm.CrdtReplicas.Single(r => r.ReplicaId == 300).Retired);
        Assert.False(h.Apply(Pruned(400, 3)).CrdtReplica.Changed); // late, after retirement

        // Replica 300: its pruner (2), then member 1.
        Assert.True(h.Apply(Pruned(300, 2)).CrdtReplica.Changed);
        Assert.False(h.Sm.CrdtReplicas.Single(r => r.ReplicaId == 300).Retired);
        Assert.True(h.Apply(Pruned(300, 1)).CrdtReplica.Changed);
        Assert.True(h.Sm.CrdtReplicas.Single(r => r.ReplicaId == 300).Retired);

        using var end = new MemoryStream();
        h.Sm.WriteSnapshot(end);
        end.Position = 0;
        var restored = StateMachine.ReadSnapshot(end);
        Assert.Equal(h.Sm.CrdtReplicas.Select(r => (r.ReplicaId, r.Retired)), restored.CrdtReplicas.Select(r => (r.ReplicaId, r.Retired)));
        Assert.Equal(h.Sm.Hash(), restored.Hash());
    }

    [Fact]
    public void BadCommandsAreRefusedAndChangeNothing()
    {
        var h = new Harness { TimeMs = 0 };
        h.Apply(Announce(1, 100));
        Assert.NotNull(h.Apply(Announce(0, 5)).Error);
        Assert.NotNull(h.Apply(Announce(5, 0)).Error);
        Assert.NotNull(h.Apply(Depart(1, 1)).Error); // a member cannot prune its own replicas
        Assert.NotNull(h.Apply(Depart(1, 0)).Error);
        Assert.NotNull(h.Apply(new Command { CrdtReplica = new CrdtReplicaCommand() }).Error);
        Assert.NotNull(h.Apply(Pruned(100, 2)).Error); // not departed
        Assert.NotNull(h.Apply(Pruned(999, 2)).Error); // unknown
        Assert.Equal([new CrdtReplicaRecord(100, 1, 0)], h.Sm.CrdtReplicas);
    }
}
