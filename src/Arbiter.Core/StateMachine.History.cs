using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    // Every change at a revision ≥ the compact revision, in (revision, position) order (revision 1
    // has none). Structs in arrays, not objects: the history lives as long as the keys' own, and
    // objects here would be copied through every GC generation for nothing. Chunked, not one
    // doubling array: without compaction (etcd's default) this grows by one entry per write for
    // good, and a doubled array holds up to twice that and leaves its old copies on the LOH.
    //
    // A change holds only its revision, its position and its record: its event is derived from the
    // key's history (the version it wrote, and the one before it as its prev_kv), so the versions
    // are referenced once, from the key, whether in memory or spilled. The compact revision's own
    // events cannot be derived (compaction dropped the versions before them) and are kept whole.
    private readonly ChunkedList<HistoryChange> _history = new();

    // The events of the compact revision itself (a watch may start there, etcd's rule): fresh
    // copies made at compaction or read from a snapshot; never handed out, only clones of them.
    private Event[] _compactEvents = [];

    /// <summary>
    /// Events with revision ≥ <paramref name="fromRevision"/>, at most about <paramref name="eventsMax"/>
    /// (whole revisions: a revision is never split, and at least one is returned when there is one).
    /// Follows etcd's watch rule: only a start below the compact revision is compacted; a start
    /// equal to it is served. (etcd has lost the deletions made at that revision by then; we still
    /// have them and return them.) A start ≤ 0 is read as 1.
    /// </summary>
    public EventHistorySlice ReadEvents(long fromRevision, int eventsMax)
    {
        if (fromRevision < _compactMainRev)
        {
            throw new EtcdException(EtcdError.Compacted);
        }

        fromRevision = Math.Max(1, fromRevision);
        if (fromRevision > _revision)
        {
            return new EventHistorySlice([], fromRevision);
        }

        var events = new List<Event>();
        var next = _revision + 1;
        if (fromRevision <= _compactMainRev)
        {
            events.AddRange(_compactEvents.Select(e => e.Clone()));
        }

        for (var i = FirstHistoryIndexAtOrAfter(fromRevision); i < _history.Count;)
        {
            var revision = _history[i].Revision;
            var end = i + 1;
            while (end < _history.Count && _history[end].Revision == revision)
            {
                end++;
            }

            if (events.Count > 0 && events.Count + (end - i) > eventsMax)
            {
                next = revision;
                break;
            }

            for (; i < end; i++)
            {
                events.Add(ChangeEvent(_history[i]));
            }
        }

        return new EventHistorySlice(events, next);
    }

    /// <summary>Hash of the key-value history up to <paramref name="revision"/> (0 = current). Throws Compacted/FutureRevision.</summary>
    /// <remarks>Reads every retained version (spilled ones from their spill): a node captures a snapshot under its lock and hashes that outside it instead.</remarks>
    public KvHash HashKv(long revision) => CaptureSnapshot().HashKv(revision);

    /// <summary>Hash of the whole state (keys, history, leases, alarms, revisions).</summary>
    /// <returns>An FNV-1a hash; equal states give equal hashes on every platform.</returns>
    public uint Hash() => CaptureSnapshot().Hash();

    /// <summary>Adds one key's history up to <paramref name="revision"/> to <paramref name="h"/> (shared by the live and the captured state).</summary>
    internal static void HashKeyHistory(ref Fnv1a h, ByteString key, ReadOnlySpan<KeyRevision> history, long revision)
    {
        // By reference: a snapshot being written calls this outside the state's lock (see KeyRevision).
        foreach (ref readonly var entry in history)
        {
            if (entry.Main > revision)
            {
                break;
            }

            HashVersion(ref h, key, entry, entry.LoadKv());
        }
    }

    /// <summary>Adds one version of a key's history to <paramref name="h"/>; <paramref name="kv"/> is the entry's key-value, already loaded.</summary>
    internal static void HashVersion(ref Fnv1a h, ByteString key, in KeyRevision entry, KeyValue? kv)
    {
        h.AddBytes(key.Span);
        h.Add(entry.Main);
        h.Add(entry.Sub);
        if (kv is not null)
        {
            h.Add(1);
            h.Add(kv.CreateRevision);
            h.Add(kv.Version);
            h.Add(kv.Lease);
            h.AddBytes(kv.Value.Span);
        }
        else
        {
            h.Add(0);
        }
    }

    private int FirstHistoryIndexAtOrAfter(long revision)
    {
        int lo = 0, hi = _history.Count;
        while (lo < hi)
        {
            var mid = lo + ((hi - lo) >> 1);
            if (_history[mid].Revision < revision)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>Appends the changes of one revision (newer than any in the history).</summary>
    private void AppendHistory(long revision, ReadOnlySpan<Event> events, ReadOnlySpan<KeyRecord> records)
    {
        if (_history.Count > 0 && _history.Last.Revision >= revision)
        {
            throw new InvalidOperationException("History revisions must increase.");
        }

        if (events.Length != records.Length)
        {
            throw new InvalidOperationException("Every change needs its key record.");
        }

        for (var i = 0; i < events.Length; i++)
        {
            var e = events[i];
            if (e.Kv.ModRevision != revision)
            {
                throw new InvalidOperationException("An event does not carry its write's revision.");
            }

            // The i-th change of a write is its key's entry (revision, i): writes number their
            // changes as they add their events.
            _history.Add(new HistoryChange(revision, records[i], i));
        }
    }

    /// <summary>A fresh event for a change (callers may reshape what they get); spilled versions are read back.</summary>
    private static Event ChangeEvent(in HistoryChange change)
    {
        var record = change.Record;
        var index = record.IndexOf(change.Revision, change.Sub);
        if (index < 0)
        {
            throw new InvalidOperationException($"A change of the history ({change.Revision}, {change.Sub}) has no entry in its key's history.");
        }

        var kv = record.History[index].LoadKv();
        return new Event
        {
            Type = kv is null ? Event.Types.EventType.Delete : Event.Types.EventType.Put,
            Kv = kv ?? new KeyValue { Key = record.Key, ModRevision = change.Revision },
            PrevKv = WatchPrevKv(record, kv, change.Revision - 1),
        };
    }

    private CompactionResponse ApplyCompaction(CompactionRequest request)
    {
        ThrowIfCorrupt();
        if (request.Revision <= _compactMainRev)
        {
            throw new EtcdException(EtcdError.Compacted);
        }

        if (request.Revision > _revision)
        {
            throw new EtcdException(EtcdError.FutureRevision);
        }

        if (_lockTable?.MinSnapshotRevision is { } pinned && request.Revision > pinned)
        {
            throw new EtcdException(CoreErrors.CompactionBlockedBySnapshot);
        }

        Compact(request.Revision);
        return new CompactionResponse { Header = Header(_revision) };
    }

    /// <summary>
    /// Keeps, for each key, the newest version at or below <paramref name="revision"/> (dropped if it
    /// is a tombstone) and everything after. Only keys changed since the last compaction can have
    /// anything to drop, and the history lists exactly those, so this costs O(changes compacted).
    /// </summary>
    private void Compact(long revision)
    {
        var end = FirstHistoryIndexAtOrAfter(revision + 1);

        // Keep the events of the compact revision itself, while their versions are still there:
        // watches may start at it (etcd's rule).
        var atRevision = new List<Event>();
        for (var i = FirstHistoryIndexAtOrAfter(revision); i < end; i++)
        {
            atRevision.Add(ChangeEvent(_history[i]));
        }

        var touched = new HashSet<KeyRecord>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < end; i++)
        {
            touched.Add(_history[i].Record);
        }

        foreach (var record in touched)
        {
            CompactRecord(record, revision);
        }

        _history.RemoveFirst(end);
        _compactEvents = [.. atRevision];
        _compactMainRev = revision;
    }

    private void CompactRecord(KeyRecord record, long revision)
    {
        var history = record.History;
        var keepFrom = -1;
        for (var i = history.Count - 1; i >= 0; i--)
        {
            if (history[i].Main <= revision)
            {
                keepFrom = i;
                break;
            }
        }

        if (keepFrom < 0)
        {
            return;
        }

        if (history[keepFrom].IsTombstone)
        {
            keepFrom++;
        }

        for (var i = 0; i < keepFrom; i++)
        {
            _sizeBytes -= history[i].IsTombstone ? TombstoneSize(record.Key) : VersionSize(record.Key, history[i].Stored.ValueLength);
        }

        history.RemoveOldest(keepFrom);
        if (history.Count == 0)
        {
            if (record.LeaseId != 0)
            {
                throw new InvalidOperationException("A compacted-away key is still attached to a lease.");
            }

            _index.Remove(record);
        }
    }

    /// <summary>
    /// The retained versions of one key, oldest first, at most the newest <paramref name="versionsMax"/>:
    /// a PUT event per stored version and a DELETE event (key and revision only) per tombstone, across
    /// generations (a key deleted and created again). Compacted versions are gone.
    /// </summary>
    public IReadOnlyList<Event> KeyVersions(ByteString key, int versionsMax)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(versionsMax);
        if (_index.Get(key) is not { } record)
        {
            return [];
        }

        var history = record.History;
        var versions = new List<Event>(Math.Min(versionsMax, history.Count));
        for (var i = Math.Max(0, history.Count - versionsMax); i < history.Count; i++)
        {
            var change = history[i];
            versions.Add(change.LoadKv() is { } kv
                ? new Event { Type = Event.Types.EventType.Put, Kv = kv }
                : new Event { Type = Event.Types.EventType.Delete, Kv = new KeyValue { Key = key, ModRevision = change.Main } });
        }

        return versions;
    }

    /// <summary>
    /// Pages out the versions this revision wrote; also the versions they superseded, when those
    /// are still in memory (a spill that refused an append before). The event
    /// history refers to versions through their keys, so the keys' histories are all there is to
    /// change. Nothing observable changes: a spilled version reads back equal.
    /// </summary>
    private void SpillWritten(long revision, ReadOnlySpan<KeyRecord> records)
    {
        if (_valueSpill is null)
        {
            return;
        }

        foreach (var record in records)
        {
            var history = record.History;
            var i = history.Count - 1;
            for (; i >= 0 && history[i].Main == revision; i--)
            {
                history.PageOut(i, _valueSpill!);
            }

            if (i >= 0)
            {
                history.PageOut(i, _valueSpill!);
            }
        }
    }

    /// <summary>Pages out every version of every key (after a snapshot or an import was read).</summary>
    private void SpillAll()
    {
        if (_valueSpill is null)
        {
            return;
        }

        foreach (var record in _index.Range(ByteString.Empty, null))
        {
            var history = record.History;
            for (var i = 0; i < history.Count; i++)
            {
                history.PageOut(i, _valueSpill!);
            }
        }
    }

    /// <summary>One change of the history: the record it changed and the entry of that record's history it added (for events and compaction).</summary>
    private readonly record struct HistoryChange(long Revision, KeyRecord Record, int Sub);
}
