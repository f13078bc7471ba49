using System.Text;
using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    /// <summary>
    /// Copies the whole state (including applied index and remembered request ids) into a
    /// <see cref="StateSnapshot"/>. Cheap: it copies references, not bytes, and not even the keys' histories (see <see cref="KeyRecord.HistorySnapshot"/>). Call it
    /// under the same exclusion as reads; the result can be written later on any thread.
    /// </summary>
    /// <returns>The captured state.</returns>
    public StateSnapshot CaptureSnapshot()
    {
        var keys = new StateSnapshot.KeyImage[_index.Count];
        var i = 0;
        foreach (var record in _index.Range(ByteString.Empty, null))
        {
            keys[i++] = new StateSnapshot.KeyImage(record.Key, record.LeaseId, record.HistorySnapshot);
        }

        var compactEvents = _compactEvents;
        var leases = new StateSnapshot.LeaseImage[_leases.Count];
        i = 0;
        foreach (var lease in _leases.Values)
        {
            leases[i++] = new StateSnapshot.LeaseImage(lease.Id, lease.TtlSeconds, lease.DeadlineMs, [.. lease.Keys.Select(r => r.Key)]);
        }

        // Remembered results are private clones that are never mutated, so sharing them is safe.
        return new StateSnapshot(
            _revision,
            _compactMainRev,
            _appliedIndex,
            _sizeBytes,
            keys,
            compactEvents,
            leases,
            [.. _alarms],
            [.. _rememberedOrder.Select(id => (id, _rememberedResults[id]))],
            _lockTable is { IsEmpty: false } table ? table.Capture() : new TransactionTableImage(),
            Auth.IsEmpty ? new AuthStoreImage() : Auth.Capture(),
            _peerSecret,
            CaptureCrdtReplicas(),
            CapturePendingMemberAdds());
    }

    /// <summary>Writes the whole state to <paramref name="stream"/>; see <see cref="StateSnapshot.WriteTo"/> for the format.</summary>
    /// <param name="stream">Where to write; left open.</param>
    public void WriteSnapshot(Stream stream) => CaptureSnapshot().WriteTo(stream);

    /// <summary>
    /// Renumbers the last applied log index, for a state restored into a new data directory whose
    /// log starts afresh (<c>arbiter snapshot restore</c>). Never called on a live member.
    /// </summary>
    /// <param name="appliedIndex">The index the new log continues after.</param>
    public void RestartLogAt(long appliedIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(appliedIndex);
        _appliedIndex = appliedIndex;
    }

    /// <summary>Restores a state machine from a stream written by <see cref="WriteSnapshot"/>.</summary>
    /// <exception cref="InvalidDataException">The stream is not a valid snapshot.</exception>
    /// <param name="stream">The snapshot.</param>
    /// <param name="limits">The limits in force (defaults when null).</param>
    /// <param name="valueSpill">Where versions are paged out (see the constructor); null keeps them all in memory.</param>
    public static StateMachine ReadSnapshot(Stream stream, CoreLimits? limits = null, IValueSpill? valueSpill = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        try
        {
            return ReadSnapshotCore(stream, limits, valueSpill);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("The snapshot is truncated.", e);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException("The snapshot holds a malformed message.", e);
        }
    }

    private static StateMachine ReadSnapshotCore(Stream stream, CoreLimits? limits, IValueSpill? valueSpill)
    {
        using var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        if (Encoding.ASCII.GetString(r.ReadBytes(StateSnapshot.Magic.Length)) != StateSnapshot.Magic)
        {
            throw new InvalidDataException("Not an Arbiter snapshot.");
        }

        var version = r.ReadInt32();
        if (version is not (StateSnapshot.FormatVersion or StateSnapshot.FormatVersionWithoutPendingMemberAdds or StateSnapshot.FormatVersionWithoutCrdtReplicas or StateSnapshot.FormatVersionWithoutPeerSecret or StateSnapshot.FormatVersionWithoutAuth or StateSnapshot.FormatVersionWithoutTransactions))
        {
            throw new InvalidDataException($"Unsupported snapshot format version {version}.");
        }

        var sm = new StateMachine(limits, valueSpill)
        {
            _revision = r.ReadInt64(),
            _compactMainRev = r.ReadInt64(),
            _appliedIndex = r.ReadInt64(),
            _sizeBytes = r.ReadInt64(),
        };

        var recordCount = ReadCount(r);
        var records = new List<KeyRecord>(recordCount);
        for (var i = 0; i < recordCount; i++)
        {
            var record = sm._index.GetOrAdd(ByteString.CopyFrom(ReadBytes(r)));
            record.LeaseId = r.ReadInt64();
            var historyCount = ReadCount(r);
            for (var j = 0; j < historyCount; j++)
            {
                var main = r.ReadInt64();
                var sub = r.ReadInt32();
                var kv = r.ReadBoolean() ? ReadMessage(r, KeyValue.Parser) : null;
                record.History.Add(new KeyRevision(main, sub, kv));
            }

            records.Add(record);
        }

        var compactEvents = new Event[ReadCount(r)];
        for (var i = 0; i < compactEvents.Length; i++)
        {
            compactEvents[i] = ReadMessage(r, Event.Parser);
        }

        var leaseCount = ReadCount(r);
        for (var i = 0; i < leaseCount; i++)
        {
            var lease = new Lease(r.ReadInt64(), r.ReadInt64());
            sm._leases.Add(lease.Id, lease);
            sm.SetDeadline(lease, r.ReadInt64());
        }

        foreach (var record in records)
        {
            if (record.LeaseId != 0)
            {
                if (!sm._leases.TryGetValue(record.LeaseId, out var lease))
                {
                    throw new InvalidDataException("A key is attached to a lease the snapshot lacks.");
                }

                lease.Keys.Add(record);
            }
        }

        var alarmCount = ReadCount(r);
        for (var i = 0; i < alarmCount; i++)
        {
            var type = (AlarmType)r.ReadInt32();
            sm._alarms.Add((type, r.ReadUInt64()));
        }

        var rememberedCount = ReadCount(r);
        for (var i = 0; i < rememberedCount; i++)
        {
            var id = r.ReadUInt64();
            sm._rememberedResults[id] = ReadMessage(r, CommandResult.Parser);
            sm._rememberedOrder.Enqueue(id);
        }

        if (version >= StateSnapshot.FormatVersionWithoutAuth)
        {
            var image = ReadMessage(r, TransactionTableImage.Parser);
            if (image.CalculateSize() > 0)
            {
                sm.Locks.Restore(image);
            }
        }

        if (version >= StateSnapshot.FormatVersionWithoutPeerSecret)
        {
            var auth = ReadMessage(r, AuthStoreImage.Parser);
            if (auth.CalculateSize() > 0)
            {
                sm.Auth.Restore(auth);
            }
        }

        if (version >= StateSnapshot.FormatVersionWithoutCrdtReplicas)
        {
            var secret = ReadBytes(r);
            sm._peerSecret = secret.Length is 0 or PeerSecretSizeBytes
                ? ByteString.CopyFrom(secret)
                : throw new InvalidDataException($"The snapshot's peer secret is {secret.Length} bytes, not {PeerSecretSizeBytes}.");
        }

        if (version >= StateSnapshot.FormatVersionWithoutPendingMemberAdds)
        {
            sm.RestoreCrdtReplicas(ReadMessage(r, CrdtReplicaTableImage.Parser));
        }

        if (version >= StateSnapshot.FormatVersion)
        {
            sm.RestorePendingMemberAdds(ReadMessage(r, PendingMemberAddsImage.Parser));
        }

        sm.RebuildHistory(records, compactEvents);
        var expectedHash = r.ReadUInt32();
        if (sm.Hash() != expectedHash)
        {
            throw new InvalidDataException("The snapshot's hash does not match its contents.");
        }

        // After the hash: it reads every version, cheaper while they are all still in memory.
        sm.SpillAll();
        return sm;
    }

    /// <summary>
    /// Rebuilds the event history: the compact revision's events as stored, later ones from the key
    /// histories (a version's previous entry is its prev_kv; a tombstone's key-value carries only
    /// key and revision), in (revision, position) order.
    /// </summary>
    private void RebuildHistory(List<KeyRecord> records, Event[] compactEvents)
    {
        if (compactEvents.Any(e => e.Kv is null || e.Kv.ModRevision != _compactMainRev))
        {
            throw new InvalidDataException("An event of the compact revision does not carry it.");
        }

        _compactEvents = compactEvents;

        var changes = new List<(long Main, int Sub, KeyRecord Record, int Index)>();
        foreach (var record in records)
        {
            for (var i = 0; i < record.History.Count; i++)
            {
                if (record.History[i].Main > _compactMainRev)
                {
                    changes.Add((record.History[i].Main, record.History[i].Sub, record, i));
                }
            }
        }

        changes.Sort((a, b) => a.Main != b.Main ? a.Main.CompareTo(b.Main) : a.Sub.CompareTo(b.Sub));
        foreach (var (main, sub, record, _) in changes)
        {
            _history.Add(new HistoryChange(main, record, sub));
        }
    }

    private static int ReadCount(BinaryReader r)
    {
        var count = r.ReadInt32();
        return count >= 0 ? count : throw new InvalidDataException("Negative count in snapshot.");
    }

    private static byte[] ReadBytes(BinaryReader r)
    {
        var length = ReadCount(r);

        var bytes = r.ReadBytes(length);
        return bytes.Length == length ? bytes : throw new EndOfStreamException();
    }

    private static T ReadMessage<T>(BinaryReader r, MessageParser<T> parser)
        where T : IMessage<T> => parser.ParseFrom(ReadBytes(r));
}
