using System.Buffers.Binary;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    /// <summary>etcdctl's snapshot save requires (size mod 512) == 32: blocks of 512 bytes plus a SHA-256.</summary>
    public const int SnapshotBlockSizeBytes = 512;

    private static ReadOnlySpan<byte> SnapshotMagic => "ARBSNAP1"u8;

    /// <summary>Member status, as etcd's Maintenance.Status reports it.</summary>
    public async Task<StatusResponse> StatusAsync(StatusRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var alarms = await AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get }, cancellationToken).ConfigureAwait(false);
        var (revision, sizeBytes) = _host.Read(s => (s.Revision, s.SizeBytes));
        var response = new StatusResponse
        {
            Header = NewHeader(revision),
            Version = EtcdApiVersion,
            DbSize = _wal?.SizeBytes ?? sizeBytes,
            DbSizeInUse = sizeBytes,
            Leader = HasLeader ? _log.LeaderId : 0,
            RaftIndex = (ulong)_log.CommittedIndex,
            RaftTerm = _log.Term,
            RaftAppliedIndex = (ulong)_log.AppliedIndex,
        };
        foreach (var alarm in alarms.Alarms)
        {
            response.Errors.Add($"alarm:{alarm.Alarm}");
        }

        return response;
    }

    /// <summary>Lists alarms (from the state), or raises/clears one (a command, so every replica agrees).</summary>
    public async Task<AlarmResponse> AlarmAsync(AlarmRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Action == AlarmRequest.Types.AlarmAction.Get)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // etcd answers a listing without a response header.
            var alarms = _host.Read(s => s.Alarms);
            var listed = new AlarmResponse();
            listed.Alarms.AddRange(alarms.Where(a => request.Alarm == AlarmType.None || a.Alarm == request.Alarm));
            return listed;
        }

        if (request.Action != AlarmRequest.Types.AlarmAction.Get && request.MemberID == 0)
        {
            request = new AlarmRequest(request) { MemberID = MemberId };
        }

        return await ProposeAsync(new Command { Alarm = request }, r => r.Alarm, r => r.Header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Hash of the whole state.</summary>
    public Task<HashResponse> HashAsync(HashRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        // Captured under the lock, hashed outside it: hashing reads every version, spilled ones from disk.
        var (snapshot, revision) = _host.Read(s => (s.CaptureSnapshot(), s.Revision));
        return Task.FromResult(new HashResponse { Header = NewHeader(revision), Hash = snapshot.Hash() });
    }

    /// <summary>Hash of the key-value history up to a revision (0 = current).</summary>
    public Task<HashKVResponse> HashKvAsync(HashKVRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var (snapshot, current) = _host.Read(s => (s.CaptureSnapshot(), s.Revision));
        var hash = snapshot.HashKv(request.Revision);
        return Task.FromResult(new HashKVResponse { Header = NewHeader(current), Hash = hash.Hash, CompactRevision = hash.CompactRevision });
    }

    /// <summary>
    /// Defragment: there is no B-tree file to rewrite; instead a snapshot is written so that the
    /// log segments before it are deleted, which is what frees disk here.
    /// </summary>
    public async Task<DefragmentResponse> DefragmentAsync(DefragmentRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await _log.SnapshotAsync(cancellationToken).ConfigureAwait(false);
        return new DefragmentResponse { Header = NewHeader(Revision) };
    }

    /// <summary>
    /// Writes a consistent snapshot of the whole state: "ARBSNAP1", the payload length (8 bytes,
    /// little-endian), the payload, zero padding to a multiple of 512 bytes. The gRPC layer sends a
    /// SHA-256 of these bytes after them, as etcd does.
    /// </summary>
    public byte[] CreateSnapshot()
    {
        var image = _host.Read(s => s.CaptureSnapshot());
        using var payload = new MemoryStream();
        image.WriteTo(payload);
        var headerSize = SnapshotMagic.Length + sizeof(long);
        var total = headerSize + payload.Length;
        var padded = (total + SnapshotBlockSizeBytes - 1) / SnapshotBlockSizeBytes * SnapshotBlockSizeBytes;
        var bytes = new byte[padded];
        SnapshotMagic.CopyTo(bytes);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(SnapshotMagic.Length), payload.Length);
        payload.GetBuffer().AsSpan(0, (int)payload.Length).CopyTo(bytes.AsSpan(headerSize));
        return bytes;
    }

    /// <summary>This member as etcd's Member message.</summary>
    public Member Self()
    {
        var member = new Member { ID = MemberId, Name = Options.Name };
        member.PeerURLs.AddRange(Options.AdvertisePeerUrls);
        member.ClientURLs.AddRange(Options.AdvertiseClientUrls);
        return member;
    }
}
