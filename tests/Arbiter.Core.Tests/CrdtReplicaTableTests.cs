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
        Assert.Equal([new CrdtReplicaRecord(100, 1, 0)], h.Sm.CrdtReplicas);
    }
}
