using Arbiter.Protocol.Internal;

namespace Arbiter.Core.Tests;

/// <summary>MemberAdds as a consensus fact: pending and settled through the log, in snapshots (format 6) and the state hash, forgotten on restore, bad input refused.</summary>
public sealed class PendingMemberAddsTests
{
    private static Command Pending(string peerUrl, ulong memberId) =>
        new() { MemberAdd = new MemberAddCommand { Pending = new MemberAddPending { PeerUrl = peerUrl, MemberId = memberId } } };

    private static Command Settled(string peerUrl) =>
        new() { MemberAdd = new MemberAddCommand { Settled = new MemberAddSettled { PeerUrl = peerUrl } } };

    [Fact]
    public void Adds_are_pending_until_settled_and_change_no_revision()
    {
        var h = new Harness();
        var revision = h.Sm.Revision;
        Assert.True(h.Apply(Pending("http://10.0.0.5:2380", 5)).MemberAdd.Changed);
        Assert.False(h.Apply(Pending("http://10.0.0.5:2380", 5)).MemberAdd.Changed); // a retried proposal
        Assert.True(h.Apply(Pending("http://10.0.0.4:2380", 4)).MemberAdd.Changed);
        PendingMemberAdd[] both = [new("http://10.0.0.4:2380", 4), new("http://10.0.0.5:2380", 5)];
        Assert.Equal(both, h.Sm.PendingMemberAdds);

        Assert.True(h.Apply(Settled("http://10.0.0.4:2380")).MemberAdd.Changed);
        Assert.False(h.Apply(Settled("http://10.0.0.4:2380")).MemberAdd.Changed);
        Assert.False(h.Apply(Settled("http://10.0.0.9:2380")).MemberAdd.Changed);
        Assert.Equal([new PendingMemberAdd("http://10.0.0.5:2380", 5)], h.Sm.PendingMemberAdds);
        Assert.Equal(revision, h.Sm.Revision); // invisible to clients' revisions
        h.Sm.VerifyIntegrity();
    }

    [Fact]
    public void Snapshots_keep_pending_adds_in_the_hash_and_restore_can_forget_them()
    {
        var h = new Harness();
        h.Put("k", "v");
        var before = h.Sm.Hash();
        h.Apply(Pending("http://10.0.0.4:2380", 4));
        Assert.NotEqual(before, h.Sm.Hash());

        using var stream = new MemoryStream();
        h.Sm.WriteSnapshot(stream);
        stream.Position = 0;
        var restored = StateMachine.ReadSnapshot(stream);
        Assert.Equal(h.Sm.PendingMemberAdds, restored.PendingMemberAdds);
        Assert.Equal(h.Sm.Hash(), restored.Hash());

        restored.ForgetPendingMemberAdds();
        Assert.Empty(restored.PendingMemberAdds);
        Assert.Equal(before, restored.Hash());
    }

    [Fact]
    public void A_command_without_a_peer_url_is_refused_and_changes_nothing()
    {
        var h = new Harness();
        h.Apply(Pending("http://10.0.0.4:2380", 4));
        var hash = h.Sm.Hash();
        foreach (var bad in new[] { Pending(string.Empty, 4), Settled(string.Empty), new Command { MemberAdd = new MemberAddCommand() } })
        {
            var result = h.Apply(bad);
            Assert.Equal(CommandResult.ResultOneofCase.Error, result.ResultCase);
            Assert.Equal(CoreErrors.EmptyCommand.Message, result.Error.Message);
        }

        Assert.Equal(hash, h.Sm.Hash());
    }
}
