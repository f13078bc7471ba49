using Arbiter.Protocol.Mvcc;

namespace Arbiter.Client;

/// <summary>Kind of a watch event.</summary>
public enum WatchEventKind
{
    /// <summary>A key was created or changed.</summary>
    Put,

    /// <summary>A key was deleted (or its lease expired).</summary>
    Delete,
}

/// <summary>One change seen by a watch.</summary>
/// <param name="Kind">Put or delete.</param>
/// <param name="Kv">The key-value after the change; for a delete, the key and the deletion's mod revision.</param>
/// <param name="PrevKv">The key-value before the change, when asked for.</param>
public sealed record WatchEvent(WatchEventKind Kind, KeyValue Kv, KeyValue? PrevKv)
{
    /// <summary>The key as UTF-8.</summary>
    public string Key => Kv.Key.ToStringUtf8();

    /// <summary>The value as UTF-8 (empty for a delete).</summary>
    public string Value => Kv.Value.ToStringUtf8();

    /// <summary>The revision of the change.</summary>
    public long Revision => Kv.ModRevision;
}

/// <summary>What to watch and from where.</summary>
public sealed record WatchOptions
{
    /// <summary>Watch every key starting with the key (a prefix watch).</summary>
    public bool Prefix { get; init; }

    /// <summary>First revision to deliver; 0 = changes after now.</summary>
    public long StartRevision { get; init; }

    /// <summary>Include the previous key-value in events.</summary>
    public bool PrevKv { get; init; }

    /// <summary>Skip put events.</summary>
    public bool NoPut { get; init; }

    /// <summary>Skip delete events.</summary>
    public bool NoDelete { get; init; }

    /// <summary>Pause before re-creating the watch after the stream broke, in ms.</summary>
    public int ReconnectDelayMs { get; init; } = 200;

    /// <summary>
    /// Where the watch may start: null (etcd's behaviour) starts on whatever member the client
    /// talks to; a session or causal level makes a watch from "now" start at or after that
    /// token's revision, even on a member that had not applied it yet.
    /// </summary>
    public Arbiter.Protocol.Consistency.ReadConsistency? Consistency { get; init; }
}

/// <summary>
/// The watch could not continue because the revisions it still needed were compacted away: events
/// were lost, so the caller must re-read state (at <see cref="CompactRevision"/> or later) and watch again.
/// </summary>
public sealed class WatchCompactedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WatchCompactedException(long requestedRevision, long compactRevision)
        : base($"watch from revision {requestedRevision} cannot continue: history is compacted up to revision {compactRevision}")
    {
        RequestedRevision = requestedRevision;
        CompactRevision = compactRevision;
    }

    /// <summary>Creates the exception.</summary>
    public WatchCompactedException()
        : this(0, 0)
    {
    }

    /// <summary>Creates the exception.</summary>
    public WatchCompactedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public WatchCompactedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The revision the watch needed next.</summary>
    public long RequestedRevision { get; }

    /// <summary>The store's compaction revision: the oldest revision still available.</summary>
    public long CompactRevision { get; }
}
