using System.Runtime.CompilerServices;
using DotNext.Net.Cluster.Consensus.Raft;

namespace Arbiter.Node.Cluster;

/// <summary>
/// How long a member must have heard nothing from a leader before it grants a (pre-)vote.
/// DotNext uses the member's own randomized election timeout (1–1.5 × the election timeout) for
/// that, so the first survivor whose timer fires is always refused by the other, whose timer has
/// not: an election then completes at the later timer, and when the first also has the longer log
/// (the other is refused for being behind) only at its second try, a whole timeout later. etcd
/// refuses only within the base election timeout (its check-quorum lease), so the first candidate
/// with a complete log wins. While the leader is judged silent (<see cref="SilentLeaderWatch{TMember}"/>)
/// the window is the base election timeout, as etcd's; otherwise DotNext's.
/// </summary>
/// <remarks>
/// The window is DotNext 6.12's private field <c>RaftCluster&lt;TMember&gt;.electionTimeout</c>
/// (the public <c>ElectionTimeout</c> reads it), reached through <see cref="UnsafeAccessorAttribute"/>.
/// DotNext also starts a follower's timer with it, so while it is shortened a follower that resumes
/// after a failed pre-vote waits the base timeout. DotNext writes a new random value after a failed
/// election; <see cref="Restore"/> then keeps that one. <see cref="Verify"/> runs at start.
/// </remarks>
internal sealed class LeaderStickinessWindow(RaftCluster raft, int baseElectionTimeoutMs)
{
    private int? _randomized;

    /// <summary>The window in effect, in ms.</summary>
    public int CurrentMs => Volatile.Read(ref Fields<RaftClusterMember>.ElectionTimeout(raft));

    /// <summary>True while the base election timeout is in effect.</summary>
    public bool IsShortened => _randomized is not null;

    /// <summary>Puts the base election timeout in effect (again, if DotNext drew a new random one meanwhile).</summary>
    public void Shorten()
    {
        var current = CurrentMs;
        if (current != baseElectionTimeoutMs)
        {
            _randomized = current;
            Volatile.Write(ref Fields<RaftClusterMember>.ElectionTimeout(raft), baseElectionTimeoutMs);
        }
    }

    /// <summary>Gives DotNext's randomized window back, unless DotNext drew a new one meanwhile.</summary>
    public void Restore()
    {
        if (_randomized is { } randomized && CurrentMs == baseElectionTimeoutMs)
        {
            Volatile.Write(ref Fields<RaftClusterMember>.ElectionTimeout(raft), randomized);
        }

        _randomized = null;
    }

    /// <summary>Checks that the field holds what DotNext's public <c>ElectionTimeout</c> says; throws a clear error otherwise.</summary>
    public void Verify()
    {
        int field;
        try
        {
            field = CurrentMs;
        }
        catch (Exception e) when (e is MissingFieldException or TypeLoadException)
        {
            throw Unsupported(e);
        }

        if (TimeSpan.FromMilliseconds(field) != raft.ElectionTimeout)
        {
            throw Unsupported(null);
        }
    }

    private static InvalidOperationException Unsupported(Exception? cause) => new(
        $"This DotNext.Net.Cluster ({typeof(RaftCluster).Assembly.GetName().Version}) does not keep the election timeout where Arbiter " +
        "shortens leader stickiness for a silent leader (see LeaderStickinessWindow). Use the DotNext version Arbiter pins.",
        cause);

    private static class Fields<TMember>
        where TMember : class, IRaftClusterMember, IDisposable
    {
        [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "electionTimeout")]
        public static extern ref int ElectionTimeout(RaftCluster<TMember> cluster);
    }
}
