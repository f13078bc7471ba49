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

    /// <summary>Election timeout in ms (<c>--election-timeout</c>); a follower waits between this and twice this before campaigning.</summary>
    public int ElectionTimeoutMs { get; init; } = 1000;

    /// <summary>How long a request waits for a leader to be known before failing with "etcdserver: no leader".</summary>
    public int LeaderWaitTimeoutMs { get; init; } = 3000;

    /// <summary>
    /// Longest a write or linearizable read may take before failing with "etcdserver: request
    /// timed out" (etcd: 5 s plus two election timeouts). Bounds waiting on the minority side of a partition.
    /// </summary>
    public int RequestTimeoutMs { get; init; } = 7000;

    /// <summary>Raft entries replicating at once on the leader; each entry carries a batch of commands.</summary>
    public int ReplicationsInFlightMax { get; init; } = 4;

    /// <summary>How long a membership change waits for a new member to answer before giving up, in ms.</summary>
    public int MemberAddTimeoutMs { get; init; } = 5 * 60 * 1000;
}
