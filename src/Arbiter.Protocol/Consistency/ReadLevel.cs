namespace Arbiter.Protocol.Consistency;

/// <summary>The rungs of the consistency ladder a read can ask for, strongest first.</summary>
public enum ReadLevel
{
    /// <summary>Real-time order: the read sees every write acknowledged before it started (ReadIndex through the leader).</summary>
    Linearizable = 0,

    /// <summary>At most a bounded lag behind the leader, answered by the member itself when it can show it is within the bound.</summary>
    BoundedStaleness = 1,

    /// <summary>Read-your-writes, monotonic reads (and, through the one log, monotonic writes and writes-follow-reads) within one session token.</summary>
    Session = 2,

    /// <summary>Sees everything the holder of a token handed over saw or wrote.</summary>
    Causal = 3,

    /// <summary>The member's own state, no waiting; monotonic per member (etcd's <c>serializable</c>).</summary>
    Serializable = 4,

    /// <summary>The state at a given revision (etcd's <c>revision</c> field); waits briefly for a member that has not reached it.</summary>
    AtRevision = 5,
}
