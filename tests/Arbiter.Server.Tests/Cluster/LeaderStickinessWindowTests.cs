using Arbiter.Node.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>
/// <see cref="LeaderStickinessWindow"/> against two real DotNext members: one sends the other a
/// heartbeat as a leader of term 1, then asks it for a pre-vote. Within its election timeout (ten
/// minutes here, the window) the asked member refuses; with a window of zero it grants; restored,
/// it refuses again.
/// </summary>
public sealed class LeaderStickinessWindowTests : IAsyncLifetime
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);
    private readonly System.Net.IPEndPoint _askedEndPoint = InProcessRaftMember.FreeEndPoint();
    private InProcessRaftMember _asked = null!;
    private InProcessRaftMember _asking = null!;

    public async Task InitializeAsync()
    {
        var asking = InProcessRaftMember.FreeEndPoint();
        _asked = await InProcessRaftMember.StartAsync(_askedEndPoint, [_askedEndPoint, asking], RequestTimeout);
        _asking = await InProcessRaftMember.StartAsync(asking, [_askedEndPoint, asking], RequestTimeout);
    }

    public async Task DisposeAsync()
    {
        await _asking.DisposeAsync();
        await _asked.DisposeAsync();
    }

    [Fact]
    public async Task A_member_grants_a_pre_vote_once_the_window_has_passed_and_refuses_again_after_restore()
    {
        var window = new LeaderStickinessWindow(_asked.Raft, baseElectionTimeoutMs: 0);
        window.Verify();
        var randomized = window.CurrentMs;
        await HeartbeatAsync();
        Assert.Equal(PreVoteResult.RejectedByFollower, await PreVoteAsync());

        window.Shorten();
        Assert.True(window.IsShortened);
        Assert.Equal(0, window.CurrentMs);
        Assert.Equal(TimeSpan.Zero, _asked.Raft.ElectionTimeout);
        Assert.Equal(PreVoteResult.Accepted, await PreVoteAsync());

        window.Restore();
        Assert.False(window.IsShortened);
        Assert.Equal(randomized, window.CurrentMs);
        Assert.Equal(PreVoteResult.RejectedByFollower, await PreVoteAsync());
    }

    [Fact]
    public void Restore_keeps_a_window_DotNext_drew_meanwhile()
    {
        var window = new LeaderStickinessWindow(_asked.Raft, baseElectionTimeoutMs: 1);
        var randomized = window.CurrentMs;
        window.Shorten();

        // As after a failed election, when DotNext draws a new random timeout.
        new LeaderStickinessWindow(_asked.Raft, baseElectionTimeoutMs: 777).Shorten();
        window.Restore();
        Assert.Equal(777, window.CurrentMs);
        Assert.NotEqual(randomized, window.CurrentMs);
    }

    private IRaftClusterMember Asked => _asking.MemberAt(_askedEndPoint);

    /// <summary>An empty AppendEntries of term 1: the asked member now follows a leader it heard just now.</summary>
    private async Task HeartbeatAsync()
    {
        await Asked.AppendEntriesAsync<EmptyLogEntry, EmptyLogEntry[]>(term: 1, [], prevLogIndex: 0, prevLogTerm: 0, commitIndex: 0, CancellationToken.None);
        Assert.Equal(1, _asked.Raft.Term);
        Assert.NotNull(_asked.Raft.Leader);
    }

    private async Task<PreVoteResult> PreVoteAsync()
    {
        var result = await Asked.PreVoteAsync(term: 2, lastLogIndex: 0, lastLogTerm: 0, CancellationToken.None);
        return result.Value;
    }
}
