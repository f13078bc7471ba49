using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core;

/// <summary>One stored change of another store's MVCC history: a put (<see cref="Kv"/> set) or a deletion of <see cref="Key"/>.</summary>
/// <param name="Main">The store revision of the change.</param>
/// <param name="Sub">The change's position inside its revision.</param>
/// <param name="Key">The key changed.</param>
/// <param name="Kv">The stored key-value (its key, revisions, version and lease as the other store kept them), or null for a deletion.</param>
public readonly record struct ImportedRevision(long Main, long Sub, ByteString Key, KeyValue? Kv);

/// <summary>
/// A whole MVCC store kept by another system (etcd's backend, read by <c>arbiter snapshot restore</c>),
/// in the terms <see cref="StateMachine.Import"/> needs.
/// </summary>
public sealed class ImportedStore
{
    /// <summary>Every retained change, in any order.</summary>
    public required IReadOnlyList<ImportedRevision> Revisions { get; init; }

    /// <summary>The revision the history was compacted at (0 when never).</summary>
    public long CompactRevision { get; init; }

    /// <summary>The store revision when it is higher than every retained change (0: the newest change's).</summary>
    public long Revision { get; init; }

    /// <summary>The leases: id and granted TTL, in seconds.</summary>
    public IReadOnlyList<(long Id, long TtlSeconds)> Leases { get; init; } = [];

    /// <summary>Users, roles and whether authentication is on (null: none).</summary>
    public AuthStoreImage? Auth { get; init; }
}

public sealed partial class StateMachine
{
    /// <summary>
    /// Builds a state machine holding <paramref name="store"/>: the same keys, values, create and mod
    /// revisions, versions, leases (renewed to their full TTL by the first leader, as after any
    /// restart), compaction point and retained history, as if it had been written here. A compaction
    /// that the other store had only scheduled is completed (a key keeps its newest version at or below
    /// the compact revision, unless that version is a deletion). Every invariant the store relies on is
    /// checked before the result is returned.
    /// </summary>
    /// <exception cref="InvalidDataException">The store is inconsistent (the message names the first problem).</exception>
    /// <param name="store">The other store's contents.</param>
    /// <param name="limits">The limits in force (defaults when null).</param>
    /// <param name="valueSpill">Where versions are paged out (see the constructor); null keeps them all in memory.</param>
    public static StateMachine Import(ImportedStore store, CoreLimits? limits = null, IValueSpill? valueSpill = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        var compact = store.CompactRevision > 0 ? store.CompactRevision : -1;
        var ordered = store.Revisions.OrderBy(r => r.Main).ThenBy(r => r.Sub).ToList();
        var newest = ordered.Count == 0 ? 1 : ordered[^1].Main;
        var sm = new StateMachine(limits, valueSpill)
        {
            _revision = Math.Max(Math.Max(newest, store.Revision), Math.Max(compact, 1)),
            _compactMainRev = compact,
        };

        foreach (var lease in store.Leases)
        {
            if (lease.Id <= 0 || lease.TtlSeconds <= 0 || sm._leases.ContainsKey(lease.Id))
            {
                throw new InvalidDataException($"lease {lease.Id} (TTL {lease.TtlSeconds} s) is invalid or listed twice");
            }

            var imported = new Lease(lease.Id, lease.TtlSeconds);
            sm._leases.Add(imported.Id, imported);
            sm.SetDeadline(imported, 0); // renewed by LeasePromote before anything can expire
            sm._sizeBytes += LeaseOverheadBytes;
        }

        // Group by key in revision order, completing the compaction: at or below the compact revision
        // only the newest version of a key survives, and only if it is not a deletion.
        var byKey = new Dictionary<ByteString, List<ImportedRevision>>();
        (long Main, long Sub) previous = (0, -1);
        foreach (var change in ordered)
        {
            if ((change.Main, change.Sub) == previous)
            {
                throw new InvalidDataException($"two changes at revision {change.Main}.{change.Sub}");
            }

            if (change.Main <= 0 || change.Sub is < 0 or > int.MaxValue)
            {
                throw new InvalidDataException($"a change at the invalid revision {change.Main}.{change.Sub}");
            }

            if (change.Kv is { } kv && (!kv.Key.Equals(change.Key) || kv.ModRevision != change.Main))
            {
                throw new InvalidDataException($"the version stored at revision {change.Main}.{change.Sub} names key {change.Key.ToStringUtf8()} and mod revision {kv.ModRevision} differently");
            }

            previous = (change.Main, change.Sub);
            if (!byKey.TryGetValue(change.Key, out var changes))
            {
                byKey[change.Key] = changes = [];
            }

            if (changes.Count > 0 && change.Main <= compact)
            {
                changes.RemoveAt(changes.Count - 1);
            }

            changes.Add(change);
        }

        var records = new List<KeyRecord>(byKey.Count);
        var compactEvents = new List<(Protocol.Mvcc.Event Event, KeyRecord Record)>();
        foreach (var (key, changes) in byKey)
        {
            if (changes[0].Main <= compact && changes[0].Kv is null)
            {
                changes.RemoveAt(0);
            }

            if (changes.Count == 0)
            {
                continue;
            }

            var record = sm._index.GetOrAdd(key);
            foreach (var change in changes)
            {
                record.History.Add(new KeyRevision(change.Main, (int)change.Sub, change.Kv));
                sm._sizeBytes += change.Kv is { } kv ? VersionSize(key, kv) : TombstoneSize(key);
                if (change.Main == compact && change.Kv is { } atCompact)
                {
                    compactEvents.Add((new Protocol.Mvcc.Event { Type = Protocol.Mvcc.Event.Types.EventType.Put, Kv = atCompact }, record));
                }
            }

            if (record.Latest is { Lease: not 0 } live)
            {
                if (!sm._leases.TryGetValue(live.Lease, out var lease))
                {
                    throw new InvalidDataException($"key {key.ToStringUtf8()} is attached to lease {live.Lease}, which the store does not hold");
                }

                record.LeaseId = live.Lease;
                lease.Keys.Add(record);
            }

            records.Add(record);
        }

        // The compact revision's events keep watches from that revision answerable; order them as written.
        compactEvents.Sort((a, b) => FindSub(a.Record, compact).CompareTo(FindSub(b.Record, compact)));
        sm.RebuildHistory(records, [.. compactEvents.Select(e => e.Event)]);
        if (store.Auth is { } auth)
        {
            sm.Auth.Restore(auth);
        }

        try
        {
            sm.VerifyIntegrity();
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"the imported store is inconsistent: {e.Message}", e);
        }

        sm.SpillAll();
        return sm;
    }

    private static int FindSub(KeyRecord record, long main)
    {
        foreach (var entry in record.History.AsSpan())
        {
            if (entry.Main == main)
            {
                return entry.Sub;
            }
        }

        throw new InvalidOperationException($"No change of the key at revision {main}.");
    }
}
