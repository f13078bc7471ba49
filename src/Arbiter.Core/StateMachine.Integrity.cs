using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Mvcc;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    /// <summary>
    /// Checks every internal invariant the hot paths rely on, in O(state): history order, sizes,
    /// key↔lease links, deadlines, event history. Throws <see cref="InvalidOperationException"/> on
    /// the first broken one. For tests and diagnostics; not called by <see cref="Apply"/>.
    /// </summary>
    public void VerifyIntegrity()
    {
        long size = _leases.Count * LeaseOverheadBytes;
        var count = 0;
        KeyRecord? previous = null;
        foreach (var record in _index.Range(Google.Protobuf.ByteString.Empty, null))
        {
            count++;
            Check(previous == null || KeyComparer.CompareKeys(previous.Key, record.Key) < 0, "index out of key order");
            Check(record.History.Count > 0, "a key without history stays indexed");
            for (var i = 0; i < record.History.Count; i++)
            {
                var entry = record.History[i];
                Check(entry.Main <= _revision, "a version above the store revision");
                Check(i == 0 || (record.History[i - 1].Main, record.History[i - 1].Sub).CompareTo((entry.Main, entry.Sub)) < 0, "history out of order");
                Check(i > 0 || entry.Main > _compactMainRev || !entry.IsTombstone, "a compacted tombstone survived");
                Check(entry.Main > _compactMainRev || i == 0, "more than one version at or below the compact revision");
                if (entry.LoadKv() is { } kv)
                {
                    Check(kv.ModRevision == entry.Main && kv.Key.Equals(record.Key), "a version disagrees with its entry");
                    // The first retained entry may be a compacted survivor, whose predecessors are gone.
                    if (i > 0 || entry.Main > _compactMainRev)
                    {
                        var prev = i > 0 ? record.History[i - 1].LoadKv() : null;
                        Check(kv.Version == (prev?.Version ?? 0) + 1, "version does not count puts since creation");
                        Check(kv.CreateRevision == (prev?.CreateRevision ?? kv.ModRevision), "create revision changed");
                    }

                    size += VersionSize(record.Key, kv);
                }
                else
                {
                    size += TombstoneSize(record.Key);
                }
            }

            var latest = record.Latest;
            Check(record.LeaseId == (latest?.Lease ?? 0), "the key's lease link disagrees with its latest version");
            if (record.LeaseId != 0)
            {
                Check(_leases.TryGetValue(record.LeaseId, out var lease) && lease.Keys.Contains(record), "a leased key is missing from its lease");
            }

            previous = record;
        }

        Check(count == _index.Count, "index count is wrong");
        Check(size == _sizeBytes, $"size accounting drifted: {_sizeBytes} recorded, {size} actual");
        Check(_leaseDeadlines.Count == _leases.Count, "deadline index size differs from the lease count");
        foreach (var lease in _leases.Values)
        {
            Check(_leaseDeadlines.Contains((lease.DeadlineMs, lease.Id)), "a lease is missing from the deadline index");
            foreach (var record in lease.Keys)
            {
                Check(ReferenceEquals(_index.Get(record.Key), record) && record.LeaseId == lease.Id, "a lease holds a key not linked back");
            }
        }

        for (var i = 0; i < _history.Count; i++)
        {
            var change = _history[i];
            Check(change.Revision > _compactMainRev && change.Revision <= _revision, "history entry outside (compact, current]");
            Check(i == 0 || (_history[i - 1].Revision, _history[i - 1].Sub).CompareTo((change.Revision, change.Sub)) < 0, "history out of order");
            Check(ReferenceEquals(_index.Get(change.Record.Key), change.Record), "a change of the history refers to a key not indexed");
            Check(change.Record.IndexOf(change.Revision, change.Sub) >= 0, "a change of the history has no entry in its key's history");
        }

        Check(_compactEvents.All(e => e.Kv.ModRevision == _compactMainRev), "an event of the compact revision does not carry it");

        Check(_rememberedOrder.Count == _rememberedResults.Count, "remembered ids and results differ");
        _lockTable?.Verify();
        Auth.Verify();
    }

    /// <summary>
    /// Versions with a value held in memory (not spilled) by the key histories, each counted once
    /// (the event history refers to them through the keys; the compact revision's own events are
    /// not counted). Zero with a value spill that took every append; for tests.
    /// </summary>
    internal int CountVersionsInMemory()
    {
        var seen = new HashSet<KeyValue>(ReferenceEqualityComparer.Instance);
        foreach (var record in _index.Range(Google.Protobuf.ByteString.Empty, null))
        {
            foreach (var entry in record.History.AsSpan())
            {
                if (entry.Stored.InMemory is { Value.IsEmpty: false } kv)
                {
                    seen.Add(kv);
                }
            }
        }

        return seen.Count;
    }

    private static void Check(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException("State machine invariant broken: " + what + ".");
        }
    }
}
