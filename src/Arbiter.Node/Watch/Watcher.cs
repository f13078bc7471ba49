using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Node.Watch;

/// <summary>One watch on a stream: a key range, its options, and how far it has been delivered.</summary>
internal sealed class Watcher
{
    public Watcher(long id, WatchStream stream, byte[] key, byte[]? rangeEnd)
    {
        Id = id;
        Stream = stream;
        Key = key;
        RangeEnd = rangeEnd;
    }

    public long Id { get; }

    public WatchStream Stream { get; }

    public byte[] Key { get; }

    /// <summary>Null: the single key. Empty: every key ≥ Key. Otherwise the exclusive end.</summary>
    public byte[]? RangeEnd { get; }

    public bool FilterPut { get; init; }

    public bool FilterDelete { get; init; }

    public bool PrevKv { get; init; }

    public bool Fragment { get; init; }

    public bool ProgressNotify { get; init; }

    /// <summary>The first revision not yet delivered (or skipped by filters).</summary>
    public long NextRevision { get; set; }

    /// <summary>True while the watcher receives events as they are applied; false while it catches up from history.</summary>
    public bool Synced { get; set; }

    public bool Canceled { get; set; }

    /// <summary>Whether events were sent since the last progress notification tick.</summary>
    public bool EventsSinceProgress { get; set; }

    public bool Matches(ByteString key)
    {
        var span = key.Span;
        if (RangeEnd is null)
        {
            return span.SequenceEqual(Key);
        }

        if (span.SequenceCompareTo(Key) < 0)
        {
            return false;
        }

        return RangeEnd.Length == 0 || span.SequenceCompareTo(RangeEnd) < 0;
    }

    /// <summary>The event as this watcher should see it, or null when filtered out.</summary>
    public Event? Project(Event e)
    {
        if ((e.Type == Event.Types.EventType.Put && FilterPut) || (e.Type == Event.Types.EventType.Delete && FilterDelete))
        {
            return null;
        }

        if (!Matches(e.Kv.Key))
        {
            return null;
        }

        if (PrevKv || e.PrevKv is null)
        {
            return e;
        }

        return new Event { Type = e.Type, Kv = e.Kv };
    }
}
