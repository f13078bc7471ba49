using System.Buffers.Binary;
using System.Security.Cryptography;
using Arbiter.Core;

namespace Arbiter.Node.Backup;

/// <summary>
/// A backup file as <c>arbiter snapshot save</c> and <c>etcdctl snapshot save</c> write it: the bytes
/// Maintenance.Snapshot streams (<see cref="ArbiterNode.CreateSnapshot"/>: "ARBSNAP1", the payload
/// length, the state, zero padding to 512-byte blocks) followed by their SHA-256, as etcd's files
/// end in one. Reading verifies the whole file before anything is trusted. An etcd v3 snapshot (its
/// bbolt backend) reads too: its keys, history, leases, users and roles are migrated
/// (<see cref="Etcd.EtcdSnapshot"/>).
/// </summary>
public sealed class SnapshotFile
{
    /// <summary>Bytes of the SHA-256 at the end of the file.</summary>
    public const int HashSizeBytes = 32;

    private static ReadOnlySpan<byte> Magic => "ARBSNAP1"u8;

    private SnapshotFile(StateMachine state, long sizeBytes, bool fromEtcd = false)
    {
        State = state;
        SizeBytes = sizeBytes;
        FromEtcd = fromEtcd;
    }

    /// <summary>True when the file was an etcd snapshot (bbolt), migrated on reading.</summary>
    public bool FromEtcd { get; }

    /// <summary>The restored state (not yet served by anything).</summary>
    public StateMachine State { get; }

    /// <summary>The file's size, in bytes.</summary>
    public long SizeBytes { get; }

    /// <summary>The revision the snapshot was taken at.</summary>
    public long Revision => State.Revision;

    /// <summary>Live keys in the snapshot.</summary>
    public long KeyCount => State.Range(new Protocol.Etcd.RangeRequest
    {
        Key = Google.Protobuf.ByteString.CopyFrom(0),
        RangeEnd = Google.Protobuf.ByteString.CopyFrom(0),
        CountOnly = true,
    }).Count;

    /// <summary>
    /// The key-value hash at the snapshot's revision: what <c>etcdctl endpoint hashkv</c> reported for
    /// the member the snapshot came from, at that revision.
    /// </summary>
    public uint Hash => State.HashKv(0).Hash;

    /// <summary>
    /// Reads and verifies a backup file. <paramref name="skipHashCheck"/> accepts a file without the
    /// trailing SHA-256 (etcdctl's <c>--skip-hash-check</c>), as when the snapshot bytes were copied
    /// some other way; with it the file must still parse completely.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not an intact Arbiter snapshot; the message says why in one line.</exception>
    public static SnapshotFile Read(string path, bool skipHashCheck = false, CoreLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"cannot read snapshot file {path}: {e.Message}", e);
        }

        if (Etcd.BoltFile.LooksLikeBolt(bytes))
        {
            // An etcd snapshot (etcdctl snapshot save): migrate its keys, history, leases and auth.
            try
            {
                return new SnapshotFile(StateMachine.Import(Etcd.EtcdSnapshot.Read(bytes, skipHashCheck), limits), bytes.Length, fromEtcd: true);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"etcd snapshot file {path}: {e.Message}", e);
            }
        }

        var body = bytes.AsSpan();
        var hasHash = bytes.Length % ArbiterNode.SnapshotBlockSizeBytes == HashSizeBytes;
        if (!skipHashCheck)
        {
            if (!hasHash)
            {
                throw new InvalidDataException($"snapshot file {path} has no SHA-256 at its end ({bytes.Length} bytes: truncated or not a snapshot); use --skip-hash-check for a file saved without one");
            }

            body = bytes.AsSpan(0, bytes.Length - HashSizeBytes);
            if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - HashSizeBytes)))
            {
                throw new InvalidDataException($"snapshot file {path} is corrupt: its SHA-256 does not match its contents");
            }
        }
        else if (hasHash)
        {
            body = bytes.AsSpan(0, bytes.Length - HashSizeBytes);
        }

        var headerSize = Magic.Length + sizeof(long);
        if (body.Length < headerSize || !body[..Magic.Length].SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path} is not an Arbiter snapshot (it does not start with ARBSNAP1) nor an etcd one (no bbolt magic)");
        }

        var payloadLength = BinaryPrimitives.ReadInt64LittleEndian(body[Magic.Length..]);
        if (payloadLength < 0 || payloadLength > body.Length - headerSize)
        {
            throw new InvalidDataException($"snapshot file {path} is truncated: it announces {payloadLength} bytes of state and holds {body.Length - headerSize}");
        }

        try
        {
            using var payload = new MemoryStream(bytes, headerSize, (int)payloadLength, writable: false);
            var state = StateMachine.ReadSnapshot(payload, limits);
            return new SnapshotFile(state, bytes.Length);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or ArgumentException or InvalidOperationException or FormatException or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new InvalidDataException($"snapshot file {path} is corrupt: {e.Message}", e);
        }
    }

    /// <summary>
    /// Checks what <c>etcdctl snapshot save</c> checks of a file just received (whole blocks, then a
    /// SHA-256 of them that matches); null when intact, else the problem in one line.
    /// </summary>
    public static string? VerifyReceived(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < HashSizeBytes || bytes.Length % ArbiterNode.SnapshotBlockSizeBytes != HashSizeBytes)
        {
            return $"the snapshot received has {bytes.Length} bytes, not whole 512-byte blocks and a SHA-256 (the stream was cut)";
        }

        var body = bytes[..^HashSizeBytes];
        return SHA256.HashData(body).AsSpan().SequenceEqual(bytes[^HashSizeBytes..])
            ? null
            : "the snapshot received does not match its SHA-256";
    }
}
