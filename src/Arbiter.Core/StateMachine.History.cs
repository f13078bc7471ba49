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
    private readonly ChunkedList<HistoryChange> _history = new();

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
                events.Add(_history[i].ToEvent());
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
        foreach (var entry in history)
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

            _history.Add(new HistoryChange(revision, records[i], e.Type, e.Kv, e.PrevKv));
        }
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
        var touched = new HashSet<KeyRecord>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < end; i++)
        {
            touched.Add(_history[i].Record);
        }

        foreach (var record in touched)
        {
            CompactRecord(record, revision);
        }

        // Keep the entry at the compact revision itself: watches may start there (etcd's rule).
        var drop = FirstHistoryIndexAtOrAfter(revision);
        _history.RemoveFirst(drop);
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

        if (history[keepFrom].Stored.IsTombstone)
        {
            keepFrom++;
        }

        for (var i = 0; i < keepFrom; i++)
        {
            _sizeBytes -= history[i].Stored.IsTombstone ? TombstoneSize(record.Key) : VersionSize(record.Key, history[i].Stored.ValueLength);
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
    /// Pages out the versions this revision wrote, in the key histories and in the event history's
    /// changes at this revision, keeping them readable from memory while they are among the versions
    /// written last (<see cref="RecentVersions"/>). Also the versions they superseded, when those
    /// are still in memory (a spill that refused an append before). Nothing observable changes: a
    /// spilled version reads back equal.
    /// </summary>
    private void SpillWritten(long revision, ReadOnlySpan<KeyRecord> records, int firstChange)
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
                SpillVersion(record, i, _recentVersions);
            }

            if (i >= 0)
            {
                SpillVersion(record, i, null);
            }
        }

        // A change's prev_kv was read from the key before this write: a copy when that version was
        // spilled already. The change refers to the stored version instead, as its Kv does.
        for (var c = firstChange; c < _history.Count; c++)
        {
            var change = _history[c];
            if (change.PrevKv.InMemory is not null && change.Record.StoredAt(revision - 1) is { IsSpilled: true } stored)
            {
                _history.Set(c, change with { PrevKv = stored });
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
            for (var i = 0; i < record.History.Count; i++)
            {
                SpillVersion(record, i, null);
            }
        }

        // The compact revision's events were read as their own copies, not the key histories' versions.
        for (var i = 0; i < _history.Count && _history[i].Revision == _compactMainRev; i++)
        {
            var change = _history[i];
            _history.Set(i, change with
            {
                Kv = change.Kv.SpillTo(_valueSpill),
                PrevKv = change.PrevKv.SpillTo(_valueSpill),
            });
        }
    }

    /// <summary>
    /// Pages out one version of a key, in its history and in the event history's references to it:
    /// its own change (Kv) and the change that superseded it, if any (PrevKv).
    /// </summary>
    private void SpillVersion(KeyRecord record, int index, RecentVersions? recent)
    {
        var entry = record.History[index];
        if (entry.Stored.InMemory is not { } kv)
        {
            return;
        }

        var spilled = entry.Stored.SpillTo(_valueSpill!, recent);
        if (!spilled.IsSpilled)
        {
            return;
        }

        var history = record.History;
        history[index] = entry with { Stored = spilled };
        ReplaceInHistory(entry.Main, record, kv, spilled);
        if (index + 1 < history.Count)
        {
            ReplaceInHistory(history[index + 1].Main, record, kv, spilled);
        }
    }

    /// <summary>Replaces the event history's references to <paramref name="kv"/> among <paramref name="record"/>'s changes at <paramref name="revision"/>.</summary>
    private void ReplaceInHistory(long revision, KeyRecord record, KeyValue kv, StoredVersion replacement)
    {
        for (var i = FirstHistoryIndexAtOrAfter(revision); i < _history.Count && _history[i].Revision == revision; i++)
        {
            var change = _history[i];
            if (!ReferenceEquals(change.Record, record))
            {
                continue;
            }

            if (change.Kv.Holds(kv))
            {
                change = change with { Kv = replacement };
            }

            if (change.PrevKv.Holds(kv))
            {
                change = change with { PrevKv = replacement };
            }

            _history.Set(i, change);
        }
    }

    /// <summary>One change of the history: its event's parts, and the record it changed (for compaction).</summary>
    private readonly record struct HistoryChange(long Revision, KeyRecord Record, Event.Types.EventType Type, StoredVersion Kv, StoredVersion PrevKv)
    {
        /// <summary>A fresh event (callers may reshape what they get); spilled versions are read back.</summary>
        public Event ToEvent() => new() { Type = Type, Kv = Kv.Load(), PrevKv = PrevKv.Load() };
    }
}
