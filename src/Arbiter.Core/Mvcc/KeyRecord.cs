using System.Runtime.CompilerServices;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Mvcc;

/// <summary>One entry of a key's history: a put or a tombstone.</summary>
/// <remarks>
/// 32 bytes, and no object of its own for a version paged out: its place in the spill is kept here
/// (<see cref="StoredVersion"/>'s parts). Paging the version out (<see cref="PageOut"/>) is the only
/// change an entry in use ever sees, and a snapshot being written reads entries outside the
/// state's lock meanwhile (<see cref="KeyRecord.HistorySnapshot"/>). So the place is written
/// before the reference that makes it valid (a release), and <see cref="Stored"/> reads that
/// reference first and every field with an acquire (plain loads of the place were moved before the
/// reference's by the JIT: <c>KeyRevisionTests</c>): a reader sees the key-value or the whole place,
/// never a segment with half its place. A reader outside the lock must therefore not copy an entry
/// (iterate with <c>ref readonly</c>): a copy reads the fields in no set order.
/// </remarks>
internal struct KeyRevision
{
    private object? _value;
    private long _place;
    private int _length;

    /// <summary>An entry.</summary>
    /// <param name="main">The store revision of the change.</param>
    /// <param name="sub">The change's position inside its revision (a txn can change several keys).</param>
    /// <param name="stored">The stored key-value (in memory or spilled), or a tombstone. Shared; never mutated.</param>
    public KeyRevision(long main, int sub, StoredVersion stored)
    {
        Main = main;
        Sub = sub;
        _value = stored.Value;
        _place = stored.Place;
        _length = stored.Length;
    }

    /// <summary>The store revision of the change.</summary>
    public long Main { get; }

    /// <summary>The change's position inside its revision.</summary>
    public int Sub { get; }

    /// <summary>The stored key-value (in memory or spilled), or a tombstone.</summary>
    public readonly StoredVersion Stored
    {
        get
        {
            var value = Volatile.Read(ref Unsafe.AsRef(in _value));
            var place = Volatile.Read(ref Unsafe.AsRef(in _place));
            var length = Volatile.Read(ref Unsafe.AsRef(in _length));
            return StoredVersion.FromParts(value, place, length);
        }
    }

    /// <summary>Whether the entry is a tombstone; reads one field (paging out never makes a version a tombstone or one not).</summary>
    public readonly bool IsTombstone => Volatile.Read(ref Unsafe.AsRef(in _value)) is null;

    /// <summary>The key-value, read back from its spill when spilled; null for a tombstone.</summary>
    public readonly KeyValue? LoadKv() => Stored.Load();

    /// <summary>Pages the version out to <paramref name="spill"/>; it stays as it is when it is not in memory with a value, or the spill refuses it.</summary>
    public void PageOut(IValueSpill spill)
    {
        var spilled = Stored.SpillTo(spill);
        if (ReferenceEquals(spilled.Value, _value))
        {
            return;
        }

        _place = spilled.Place;
        _length = spilled.Length;
        Volatile.Write(ref _value, spilled.Value);
    }
}

/// <summary>A key and its retained history (oldest first), plus the lease it is attached to now.</summary>
internal sealed class KeyRecord(ByteString key)
{
    // The history in an array of its own, not a List: one object less per key, and sized for
    // what a key holds (1, 2, 3, 4, 6, 9 … entries) rather than List's 4 from the first version,
    // since most keys of a large keyspace hold one or a few versions. An entry in use is never
    // rewritten but for paging its version out (the same version in another form): a new version
    // goes past the entries in use, and removing entries makes a new array. So a snapshot can keep
    // a view of the entries in use instead of a copy (HistorySnapshot).
    private KeyRevision[] _versions = [];
    private int _versionCount;

    public ByteString Key { get; } = key;

    /// <summary>The key's history (a view over this record: changes through it change the record).</summary>
    public KeyHistory History => new(this);

    internal int VersionCount => _versionCount;

    /// <summary>
    /// The history as it is now, without a copy: later writes add past it or replace the array, and
    /// paging a version out rewrites its entry only with the same version in another form.
    /// </summary>
    internal ReadOnlyMemory<KeyRevision> HistorySnapshot => new(_versions, 0, _versionCount);

    internal KeyRevision[] VersionArray => _versions;

    /// <summary>The lease the live key is attached to (0 = none).</summary>
    public long LeaseId { get; set; }

    // This record's place in its KeyIndex (a treap whose nodes are the records): one object per key
    // instead of two. Owned by the index; null children once the record is removed from it.
    internal KeyRecord? TreapLeft { get; set; }

    internal KeyRecord? TreapRight { get; set; }

    internal uint TreapPriority { get; init; }

    /// <summary>The newest version, or null when the key is deleted (or has no history).</summary>
    public KeyValue? Latest => _versionCount == 0 ? null : _versions[_versionCount - 1].LoadKv();

    internal void AddVersion(in KeyRevision entry)
    {
        if (_versionCount == _versions.Length)
        {
            // 1, 2, 3, 4, 6, 9, 13 …: exact for the few versions most keys hold, ×1.5 beyond.
            var grown = new KeyRevision[_versions.Length < 4 ? _versions.Length + 1 : _versions.Length + (_versions.Length >> 1)];
            _versions.AsSpan(0, _versionCount).CopyTo(grown);
            _versions = grown;
        }

        _versions[_versionCount++] = entry;
    }

    internal void RemoveOldestVersions(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _versionCount);
        if (count == 0)
        {
            return;
        }

        // Shrink to what is left: compaction is when a long history stops growing.
        var kept = new KeyRevision[_versionCount - count];
        _versions.AsSpan(count, kept.Length).CopyTo(kept);
        _versions = kept;
        _versionCount = kept.Length;
    }

    /// <summary>The version visible at <paramref name="revision"/>, or null when absent then.</summary>
    public KeyValue? At(long revision)
    {
        var index = IndexAt(revision);
        return index < 0 ? null : _versions[index].LoadKv();
    }

    /// <summary>True when the key has a live version at <paramref name="revision"/>, without reading it back from a spill.</summary>
    public bool ExistsAt(long revision)
    {
        var index = IndexAt(revision);
        return index >= 0 && !_versions[index].IsTombstone;
    }

    /// <summary>True when the key's newest version is live (not a tombstone), without reading it back.</summary>
    public bool IsLive => _versionCount > 0 && !_versions[_versionCount - 1].IsTombstone;

    /// <summary>The index of the entry written at (<paramref name="main"/>, <paramref name="sub"/>), or -1 when the history holds none.</summary>
    public int IndexOf(long main, int sub)
    {
        for (var i = IndexAt(main); i >= 0 && _versions[i].Main == main; i--)
        {
            if (_versions[i].Sub == sub)
            {
                return i;
            }
        }

        return -1;
    }

    // The index of the entry visible at revision (the last with Main <= revision), or -1.
    private int IndexAt(long revision)
    {
        var history = _versions.AsSpan(0, _versionCount);
        var n = history.Length;

        // Fast path: most reads are at the latest revision.
        if (n == 0 || history[n - 1].Main <= revision)
        {
            return n - 1;
        }

        int lo = 0, hi = n - 1, found = -1;
        while (lo <= hi)
        {
            var mid = lo + ((hi - lo) >> 1);
            if (history[mid].Main <= revision)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found;
    }
}

/// <summary>A key's retained history, oldest first: a view over its <see cref="KeyRecord"/>, as cheap as a reference.</summary>
internal readonly struct KeyHistory(KeyRecord record)
{
    public int Count => record.VersionCount;

    public KeyRevision this[int index] => AsSpan()[index];

    /// <summary>Pages entry <paramref name="index"/>'s version out to <paramref name="spill"/> (see <see cref="KeyRevision.PageOut"/>).</summary>
    public void PageOut(int index, IValueSpill spill) => record.VersionArray.AsSpan(0, record.VersionCount)[index].PageOut(spill);

    public ReadOnlySpan<KeyRevision> AsSpan() => record.VersionArray.AsSpan(0, record.VersionCount);

    public void Add(in KeyRevision entry) => record.AddVersion(entry);

    /// <summary>Removes the oldest <paramref name="count"/> entries.</summary>
    public void RemoveOldest(int count) => record.RemoveOldestVersions(count);
}

/// <summary>Orders byte strings as unsigned bytes, lexicographically (etcd's key order).</summary>
internal sealed class KeyComparer : IComparer<ByteString>, IComparer<KeyRecord>
{
    public static readonly KeyComparer Instance = new();

    public static int CompareKeys(ByteString a, ByteString b) => a.Span.SequenceCompareTo(b.Span);

    public int Compare(ByteString? x, ByteString? y) => CompareKeys(x ?? ByteString.Empty, y ?? ByteString.Empty);

    public int Compare(KeyRecord? x, KeyRecord? y) =>
        CompareKeys(x?.Key ?? ByteString.Empty, y?.Key ?? ByteString.Empty);
}
