namespace Arbiter.Protocol.Consistency;

/// <summary>
/// The consistency a read asks for: a level and what that level needs (a token, a staleness
/// bound, a revision). Immutable; the static members cover every level. Travels as gRPC request
/// metadata (<see cref="ConsistencyMetadata"/>), which etcd and etcd clients ignore.
/// </summary>
public sealed record ReadConsistency
{
    private ReadConsistency(ReadLevel level) => Level = level;

    /// <summary>Linearizable (the default): ReadIndex through the leader.</summary>
    public static ReadConsistency Linearizable { get; } = new(ReadLevel.Linearizable);

    /// <summary>Serializable: the member's own state, no waiting.</summary>
    public static ReadConsistency Serializable { get; } = new(ReadLevel.Serializable);

    /// <summary>The level.</summary>
    public ReadLevel Level { get; }

    /// <summary>For <see cref="ReadLevel.Session"/> and <see cref="ReadLevel.Causal"/>: the member must have applied this token's revision.</summary>
    public ConsistencyToken? Token { get; private init; }

    /// <summary>For <see cref="ReadLevel.BoundedStaleness"/>: the leader state the answer is measured against is at most this old, in ms.</summary>
    public int MaxStalenessMs { get; private init; }

    /// <summary>For <see cref="ReadLevel.BoundedStaleness"/>: how many of that leader state's latest revisions the answer may lack.</summary>
    public long MaxLagRevisions { get; private init; }

    /// <summary>For <see cref="ReadLevel.AtRevision"/>: the revision to read at.</summary>
    public long Revision { get; private init; }

    /// <summary>
    /// The revision the member must have applied before it answers: the token's for session and
    /// causal reads, the requested one at a revision, 0 otherwise.
    /// </summary>
    public long RequiredRevision => Level switch
    {
        ReadLevel.Session or ReadLevel.Causal => Token?.Revision ?? 0,
        ReadLevel.AtRevision => Revision,
        _ => 0,
    };

    /// <summary>
    /// Session read: read-your-writes and monotonic reads for whoever holds <paramref name="token"/>
    /// (no token yet: the member's own state, as serializable).
    /// </summary>
    public static ReadConsistency Session(ConsistencyToken? token) => new(ReadLevel.Session) { Token = token };

    /// <summary>Causal read: see everything the holder of <paramref name="token"/> had seen or written.</summary>
    public static ReadConsistency Causal(ConsistencyToken token) => new(ReadLevel.Causal) { Token = token };

    /// <summary>
    /// Causal read of "at least revision <paramref name="revision"/>" of whatever cluster the client
    /// talks to: for code that knows a revision it wrote itself but not the cluster id (a token
    /// with cluster id 0 skips the cluster check; responses never hand out such tokens).
    /// </summary>
    public static ReadConsistency MinRevision(long revision) => Causal(new ConsistencyToken(0, revision));

    /// <summary>
    /// Bounded staleness: the answer includes every write the leader had applied
    /// <paramref name="maxStaleness"/> ago, except at most <paramref name="maxLagRevisions"/> of the latest.
    /// </summary>
    public static ReadConsistency BoundedStaleness(TimeSpan maxStaleness, long maxLagRevisions = 0)
    {
        var ms = maxStaleness.TotalMilliseconds;
        if (ms is < 1 or > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(maxStaleness), maxStaleness, "between 1 ms and int.MaxValue ms");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(maxLagRevisions);
        return new ReadConsistency(ReadLevel.BoundedStaleness) { MaxStalenessMs = (int)ms, MaxLagRevisions = maxLagRevisions };
    }

    /// <summary>The state at <paramref name="revision"/> (a member that has not reached it waits briefly).</summary>
    public static ReadConsistency AtRevision(long revision)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(revision);
        return new ReadConsistency(ReadLevel.AtRevision) { Revision = revision };
    }

    /// <inheritdoc />
    public override string ToString() => Level switch
    {
        ReadLevel.Session or ReadLevel.Causal => $"{Level}({Token?.ToString() ?? "no token"})",
        ReadLevel.BoundedStaleness => $"{Level}({MaxStalenessMs} ms, {MaxLagRevisions} revisions)",
        ReadLevel.AtRevision => $"{Level}({Revision})",
        _ => Level.ToString(),
    };
}
