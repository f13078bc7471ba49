namespace Arbiter.Node.Cluster;

/// <summary>
/// How a member joins a Raft cluster (etcd's flag names in brackets). Set
/// <see cref="NodeOptions.Cluster"/> to run the node as a cluster member instead of a single node.
/// </summary>
public sealed record ClusterOptions
{
    /// <summary>Where this member listens for Raft traffic (<c>--listen-peer-urls</c>), e.g. <c>http://127.0.0.1:2380</c>.</summary>
    public required string ListenPeerUrl { get; init; }

    /// <summary>
    /// The founding members by name and peer URL (<c>--initial-cluster</c>); must include this
    /// member's name with its advertised peer URL. Read only on first start: afterwards the
    /// membership on disk wins, as in etcd.
    /// </summary>
    public required IReadOnlyDictionary<string, string> InitialCluster { get; init; }

    /// <summary>
    /// True for <c>--initial-cluster-state existing</c>: this member joins a running cluster (the
    /// leader adds it) instead of founding one with the others in <see cref="InitialCluster"/>.
    /// </summary>
    public bool JoinExisting { get; init; }

    /// <summary>Leader heartbeat interval in ms (<c>--heartbeat-interval</c>).</summary>
    public int HeartbeatIntervalMs { get; init; } = 100;

    /// <summary>
    /// Election timeout in ms (<c>--election-timeout</c>); a follower waits between this and one and
    /// a half times this before campaigning (etcd: up to twice). DotNext grants a (pre-)vote only
    /// once the voter's own randomized timeout has passed, so an election waited for the slowest
    /// surviving follower's timer: a narrower range shortened every election (issue #12). While the
    /// leader is silent, members grant after this base timeout instead, as etcd's do
    /// (<see cref="LeaderStickinessWindow"/>). Each member draws from its own slot of the range
    /// (<see cref="ElectionTimeoutSlot"/>).
    /// </summary>
    public int ElectionTimeoutMs { get; init; } = 1000;

    /// <summary>
    /// How long one Raft request to another member (vote, pre-vote, append entries) and one
    /// connection attempt may take before that member counts as unavailable, in ms; 0 derives it
    /// from the timing: the largest of 200 ms, two heartbeats and a quarter of the election timeout.
    /// DotNext's candidate waits for every member's answer before it counts the votes, so this
    /// bounds how long a dead, stopped or cut-off member delays an election (once for the
    /// pre-vote, once for the vote, once for the new leader's first round). It must stay well below
    /// the election timeout, or the candidate's own timeout ends the election first. A leader silent
    /// for <see cref="SilentLeaderAfterMs"/> gets the much shorter
    /// <see cref="SilentLeaderRequestTimeoutMs"/> instead (<see cref="SilentLeaderWatch{TMember}"/>).
    /// </summary>
    public int PeerRequestTimeoutMs { get; init; }

    /// <summary>The Raft request timeout in effect: <see cref="PeerRequestTimeoutMs"/>, or the one derived from the timing.</summary>
    public int EffectivePeerRequestTimeoutMs => PeerRequestTimeoutMs > 0
        ? PeerRequestTimeoutMs
        : Math.Max(PeerRequestTimeoutMinMs, Math.Max(2 * HeartbeatIntervalMs, ElectionTimeoutMs / 4));

    /// <summary>
    /// How long an established leader waits for a follower's answer to its entries or heartbeat,
    /// in ms: the election timeout less one heartbeat, or <see cref="EffectivePeerRequestTimeoutMs"/>
    /// if that is longer. DotNext's leader steps down after one round without a majority, so with
    /// the short request timeout a disk stall of a few hundred ms on the followers (seen with 64 KiB
    /// values) changed the leader; etcd's leader tolerates silence for an election timeout
    /// (CheckQuorum). A round completes once a majority answered, so a dead or cut-off follower
    /// does not hold up commits for this long. Candidates and a new leader's first round keep the
    /// short timeout (see <see cref="PeerRequestTimeoutMs"/>).
    /// </summary>
    internal int LeaderAppendTimeoutMs => Math.Max(EffectivePeerRequestTimeoutMs, ElectionTimeoutMs - HeartbeatIntervalMs);

    /// <summary>Floor of the derived Raft request timeout: below it, a busy machine's pauses make members look unavailable and leaders step down.</summary>
    private const int PeerRequestTimeoutMinMs = 200;

    /// <summary>
    /// How long a follower hears nothing from its leader before requests to that leader get
    /// <see cref="SilentLeaderRequestTimeoutMs"/>: three quarters of the election timeout, so the
    /// short timeout is in place before the first follower's election timer (at least
    /// <see cref="ElectionTimeoutMs"/>) starts the pre-vote.
    /// </summary>
    internal int SilentLeaderAfterMs => Math.Max(1, ElectionTimeoutMs * 3 / 4);

    /// <summary>
    /// The request and connect timeout for a silent leader, in ms: a quarter of a heartbeat, at
    /// least 10 ms. It decides only how soon a leader that has missed several heartbeats in a row
    /// counts as unavailable; a leader that does answer in time still vetoes as before.
    /// </summary>
    internal int SilentLeaderRequestTimeoutMs => Math.Max(10, HeartbeatIntervalMs / 4);

    /// <summary>The upper end of the randomized election timeout, in ms.</summary>
    public int ElectionTimeoutUpperMs => ElectionTimeoutMs + (ElectionTimeoutMs / 2);

    /// <summary>
    /// The part of the randomized election timeout range (<see cref="ElectionTimeoutMs"/> to
    /// <see cref="ElectionTimeoutUpperMs"/>) a member draws from: the range is cut into one slot per
    /// member, in member-id order, with a gap of a third of a slot before the next (55 ms for three
    /// members at the defaults). Two survivors' timers then never fire within that gap of each other,
    /// so both can stand in the same term only when messages take longer than the gap; with timers
    /// drawn from one shared range, that split vote came once in about 25 leader faults (issue #12).
    /// A member not in the configuration it starts with (a joiner) draws from the whole range.
    /// </summary>
    /// <param name="rank">The member's position among the configuration's member ids, sorted; -1 if absent.</param>
    /// <param name="memberCount">How many members the configuration has.</param>
    /// <returns>The lower (inclusive) and upper (exclusive) timeout, in ms.</returns>
    internal (int LowerMs, int UpperMs) ElectionTimeoutSlot(int rank, int memberCount)
    {
        var lower = ElectionTimeoutMs;
        var upper = ElectionTimeoutUpperMs;
        if (memberCount <= 1 || rank < 0 || rank >= memberCount)
        {
            return (lower, upper);
        }

        var slot = (upper - lower) / memberCount;
        if (slot < 3)
        {
            return (lower, upper);
        }

        var slotLower = lower + (rank * slot);
        return (slotLower, slotLower + slot - (slot / 3));
    }

    /// <summary>
    /// How long a request may go without a reachable leader (none known, or the one known does not
    /// answer) before it fails, in ms; 0 means one election timeout. It then fails with "etcdserver:
    /// no leader" if it never reached a leader (it did not happen), or "etcdserver: request timed
    /// out, possibly due to previous leader failure" if it may have (outcome unknown). Short, so
    /// that clients retry elsewhere instead of waiting out their own deadline.
    /// </summary>
    public int LeaderWaitTimeoutMs { get; init; }

    /// <summary>The leader wait in effect: <see cref="LeaderWaitTimeoutMs"/>, or the election timeout.</summary>
    public int EffectiveLeaderWaitTimeoutMs => LeaderWaitTimeoutMs > 0 ? LeaderWaitTimeoutMs : ElectionTimeoutMs;

    /// <summary>
    /// Longest a write or linearizable read may take before failing with "etcdserver: request
    /// timed out" (etcd: 5 s plus two election timeouts). Bounds waiting on the minority side of a partition.
    /// </summary>
    public int RequestTimeoutMs { get; init; } = 7000;

    /// <summary>Raft entries replicating at once on the leader; each entry carries a batch of commands.</summary>
    public int ReplicationsInFlightMax { get; init; } = 4;

    /// <summary>How long a membership change waits for a new member to answer before giving up, in ms.</summary>
    public int MemberAddTimeoutMs { get; init; } = 5 * 60 * 1000;

    /// <summary>Where the Raft log's pages live between writes: see <see cref="Cluster.RaftLogPages"/>.</summary>
    public RaftLogPages RaftLogPages { get; init; } = RaftLogPages.InMemory;
}

/// <summary>
/// Where a member keeps the pages of its Raft log (the entries since its last snapshot), and so how
/// it makes them durable. The files on disk are the same either way: a member may restart with the
/// other setting.
/// </summary>
public enum RaftLogPages
{
    /// <summary>
    /// In process memory, written to their files with synchronous writes when flushed (DotNext's
    /// <c>PrivateMemory</c>): puts one at a time through a 3-member cluster went about a fifth
    /// faster than with <see cref="Mapped"/>, and the follower's flush got cheaper (docs/performance.md,
    /// "The Raft log's pages in memory"). The log since the last snapshot (<c>--snapshot-count</c>
    /// entries at most) stays in memory, as etcd keeps its Raft log's entries since its last
    /// snapshot, and a restart reads it back in.
    /// </summary>
    InMemory,

    /// <summary>
    /// Mapped from their files and flushed with <c>msync</c> (DotNext's <c>SharedMemory</c>): the
    /// operating system may drop clean pages under memory pressure; flushes cost more.
    /// </summary>
    Mapped,
}
