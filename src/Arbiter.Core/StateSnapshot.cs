using System.Buffers;
using System.Text;
using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core;

/// <summary>
/// A point-in-time copy of a <see cref="StateMachine"/>'s state, taken by
/// <see cref="StateMachine.CaptureSnapshot"/>. Capturing copies only references and small arrays
/// (key-values and events are immutable and shared), so it is cheap enough to do while writes
/// wait; serializing it with <see cref="WriteTo"/> is the expensive part and may run on any thread
/// while the state machine moves on.
/// </summary>
public sealed class StateSnapshot
{
    internal const string Magic = "ARBSNAP1";
    internal const int FormatVersion = 6;

    /// <summary>Snapshots written before MemberAdds were replicated: read as having none pending.</summary>
    internal const int FormatVersionWithoutPendingMemberAdds = 5;

    /// <summary>Snapshots written before the CRDT replica table existed: read as having an empty one.</summary>
    internal const int FormatVersionWithoutCrdtReplicas = 4;

    /// <summary>Snapshots written before the cluster's peer secret existed: read as having none (the leader proposes one).</summary>
    internal const int FormatVersionWithoutPeerSecret = 3;

    /// <summary>Snapshots written before the auth store existed: read as having an empty one (auth off).</summary>
    internal const int FormatVersionWithoutAuth = 2;

    /// <summary>Snapshots written before transactions existed: read as having an empty lock table.</summary>
    internal const int FormatVersionWithoutTransactions = 1;

    private readonly KeyImage[] _keys;
    private readonly Event[] _compactEvents;
    private readonly LeaseImage[] _leases;
    private readonly (AlarmType Type, ulong MemberId)[] _alarms;
    private readonly (ulong RequestId, CommandResult Result)[] _remembered;
    private readonly TransactionTableImage _transactions;
    private readonly AuthStoreImage _auth;
    private readonly ByteString _peerSecret;
    private readonly CrdtReplicaTableImage _crdtReplicas;
    private readonly PendingMemberAddsImage _pendingMemberAdds;

    internal StateSnapshot(
        long revision,
        long compactRevision,
        long appliedIndex,
        long sizeBytes,
        KeyImage[] keys,
        Event[] compactEvents,
        LeaseImage[] leases,
        (AlarmType, ulong)[] alarms,
        (ulong, CommandResult)[] remembered,
        TransactionTableImage transactions,
        AuthStoreImage auth,
        ByteString peerSecret,
        CrdtReplicaTableImage crdtReplicas,
        PendingMemberAddsImage pendingMemberAdds)
    {
        Revision = revision;
        CompactRevision = compactRevision;
        AppliedIndex = appliedIndex;
        SizeBytes = sizeBytes;
        _keys = keys;
        _compactEvents = compactEvents;
        _leases = leases;
        _alarms = alarms;
        _remembered = remembered;
        _transactions = transactions;
        _auth = auth;
        _peerSecret = peerSecret;
        _crdtReplicas = crdtReplicas;
        _pendingMemberAdds = pendingMemberAdds;
    }

    /// <summary>The store revision at capture.</summary>
    public long Revision { get; }

    /// <summary>The compact revision at capture.</summary>
    public long CompactRevision { get; }

    /// <summary>The log index of the last command the captured state includes.</summary>
    public long AppliedIndex { get; }

    /// <summary>The state's logical size (as <see cref="StateMachine.SizeBytes"/>) at capture.</summary>
    public long SizeBytes { get; }

    /// <summary>
    /// Writes the snapshot in the format <see cref="StateMachine.ReadSnapshot"/> reads: magic,
    /// version, revision, compact revision, applied index, size; keys in order with their retained
    /// history (protobuf KeyValue per put); the events of the compact revision (the only history
    /// not rebuilt from the keys); leases; alarms; remembered request ids with their results (FIFO
    /// order); the lock table (format 2 on); the auth store (format 3 on); the peer secret, length-prefixed, empty when none (format 4 on); the CRDT replica table (format 5 on); the pending member adds (format 6 on); and <see cref="Hash"/> as a trailer checked on read. Little-endian throughout.
    /// </summary>
    /// <param name="stream">Where to write; left open.</param>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            w.Write(Encoding.ASCII.GetBytes(Magic));
            w.Write(FormatVersion);
            w.Write(Revision);
            w.Write(CompactRevision);
            w.Write(AppliedIndex);
            w.Write(SizeBytes);

            // The trailer's hash is computed as the keys are written: each spilled version is then
            // read back once, not once for writing and again for hashing.
            var h = Fnv1a.Create();
            h.Add(Revision);
            h.Add(CompactRevision);
            w.Write(_keys.Length);
            foreach (var key in _keys)
            {
                w.Write(key.Key.Length);
                w.Write(key.Key.Span);
                w.Write(key.LeaseId);
                w.Write(key.History.Length);
                // By reference: this runs outside the state's lock, while versions may be paged out (see KeyRevision).
                foreach (ref readonly var entry in key.History.Span)
                {
                    w.Write(entry.Main);
                    w.Write(entry.Sub);
                    var kv = entry.LoadKv();
                    if (entry.Main <= Revision)
                    {
                        StateMachine.HashVersion(ref h, key.Key, entry, kv);
                    }

                    w.Write(kv != null);
                    if (kv != null)
                    {
                        WriteMessage(w, kv, ref buffer);
                    }
                }
            }

            w.Write(_compactEvents.Length);
            foreach (var e in _compactEvents)
            {
                WriteMessage(w, e, ref buffer);
            }

            w.Write(_leases.Length);
            foreach (var lease in _leases)
            {
                w.Write(lease.Id);
                w.Write(lease.TtlSeconds);
                w.Write(lease.DeadlineMs);
            }

            w.Write(_alarms.Length);
            foreach (var (type, member) in _alarms)
            {
                w.Write((int)type);
                w.Write(member);
            }

            w.Write(_remembered.Length);
            foreach (var (id, result) in _remembered)
            {
                w.Write(id);
                WriteMessage(w, result, ref buffer);
            }

            WriteMessage(w, _transactions, ref buffer);
            WriteMessage(w, _auth, ref buffer);
            w.Write(_peerSecret.Length);
            w.Write(_peerSecret.Span);
            WriteMessage(w, _crdtReplicas, ref buffer);
            WriteMessage(w, _pendingMemberAdds, ref buffer);
            w.Write(HashAfterKeys(h));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Hash of the captured key-value history up to <paramref name="revision"/> (0 = the captured
    /// revision), as <see cref="StateMachine.HashKv"/> gives at capture; may run on any thread.
    /// </summary>
    /// <exception cref="EtcdException">Compacted (at or below the compact revision) or FutureRevision (above the captured one).</exception>
    public KvHash HashKv(long revision)
    {
        if (revision > 0 && revision <= CompactRevision)
        {
            throw new EtcdException(EtcdError.Compacted);
        }

        if (revision > Revision)
        {
            throw new EtcdException(EtcdError.FutureRevision);
        }

        if (revision <= 0)
        {
            revision = Revision;
        }

        var h = Fnv1a.Create();
        foreach (var key in _keys)
        {
            StateMachine.HashKeyHistory(ref h, key.Key, key.History.Span, revision);
        }

        return new KvHash(h.Value, Math.Max(0, CompactRevision), revision);
    }

    /// <summary>Hash of the whole captured state (keys, history, leases, alarms, revisions); equals <see cref="StateMachine.Hash"/> at capture.</summary>
    /// <returns>An FNV-1a hash; equal states give equal hashes on every platform.</returns>
    public uint Hash()
    {
        var h = Fnv1a.Create();
        h.Add(Revision);
        h.Add(CompactRevision);
        foreach (var key in _keys)
        {
            StateMachine.HashKeyHistory(ref h, key.Key, key.History.Span, Revision);
        }

        return HashAfterKeys(h);
    }

    /// <summary>The rest of <see cref="Hash"/>, after the revisions and the keys.</summary>
    private uint HashAfterKeys(Fnv1a h)
    {
        h.Add(_leases.Length);
        foreach (var lease in _leases)
        {
            h.Add(lease.Id);
            h.Add(lease.TtlSeconds);
            h.Add(lease.DeadlineMs);
            h.Add(lease.Keys.Length);
            foreach (var key in lease.Keys)
            {
                h.AddBytes(key.Span);
            }
        }

        h.Add(_alarms.Length);
        foreach (var (type, member) in _alarms)
        {
            h.Add((long)type);
            h.Add((long)member);
        }

        // The lock table (open transactions, locks, waiters, finished ones, counters) when non-empty,
        // so that a snapshot from before transactions existed keeps its hash.
        if (_transactions.CalculateSize() > 0)
        {
            h.AddBytes(_transactions.ToByteArray());
        }

        // The auth store (users with their hashes, roles, flag, revision, tokens) when non-empty, for the same reason.
        if (_auth.CalculateSize() > 0)
        {
            h.Add(0x417574_68); // "Auth": keeps an auth image from hashing like a lock table's bytes
            h.AddBytes(_auth.ToByteArray());
        }

        // The peer secret when set, for the same reason (a 32-bit FNV hash reveals nothing of it).
        if (!_peerSecret.IsEmpty)
        {
            h.Add(0x50656572); // "Peer"
            h.AddBytes(_peerSecret.Span);
        }

        // The CRDT replica table when non-empty, for the same reason.
        if (_crdtReplicas.CalculateSize() > 0)
        {
            h.Add(0x43524454); // "CRDT"
            h.AddBytes(_crdtReplicas.ToByteArray());
        }

        // The pending member adds when any, for the same reason.
        if (_pendingMemberAdds.CalculateSize() > 0)
        {
            h.Add(0x4D656D62); // "Memb"
            h.AddBytes(_pendingMemberAdds.ToByteArray());
        }

        return h.Value;
    }

    /// <summary>Length-prefixed message bytes, serialized through a reused buffer instead of a fresh array per message.</summary>
    private static void WriteMessage(BinaryWriter w, IMessage message, ref byte[] buffer)
    {
        var size = message.CalculateSize();
        if (buffer.Length < size)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = ArrayPool<byte>.Shared.Rent(size);
        }

        var span = buffer.AsSpan(0, size);
        message.WriteTo(span);
        w.Write(size);
        w.Write(span);
    }

    /// <summary>A key's captured history (a copy: the live list keeps changing).</summary>
    internal readonly record struct KeyImage(ByteString Key, long LeaseId, ReadOnlyMemory<KeyRevision> History);

    /// <summary>A lease as captured, with its attached keys in key order.</summary>
    internal readonly record struct LeaseImage(long Id, long TtlSeconds, long DeadlineMs, ByteString[] Keys);
}
