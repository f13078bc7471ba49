using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Arbiter.Core;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Node.Backup.Etcd;

/// <summary>
/// An etcd v3 snapshot (what <c>etcdctl snapshot save</c> writes: etcd's bbolt backend, optionally
/// followed by its SHA-256) read into an <see cref="ImportedStore"/>: the "key" bucket's MVCC history,
/// the compaction point from "meta", the "lease" bucket, and users, roles and the auth switch from
/// "auth", "authUsers" and "authRoles". Membership ("members", "cluster") is not carried over: the
/// restored data directory is a new cluster, as <c>etcdctl snapshot restore</c> makes one.
/// </summary>
public static class EtcdSnapshot
{
    private const int RevisionKeySizeBytes = 17;
    private const byte TombstoneMark = (byte)'t';
    private const int HashSizeBytes = 32;

    /// <summary>
    /// Reads an etcd snapshot file's bytes. With <paramref name="skipHashCheck"/> false a trailing
    /// SHA-256 must be present and match (etcdctl's rule for saved snapshots); with it true a
    /// trailing hash is ignored and a file without one (a copied <c>member/snap/db</c>) is accepted.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not an intact etcd snapshot; the message says why.</exception>
    public static ImportedStore Read(byte[] file, bool skipHashCheck)
    {
        ArgumentNullException.ThrowIfNull(file);
        var database = file;
        var hasHash = file.Length % 512 == HashSizeBytes;
        if (hasHash)
        {
            database = file[..^HashSizeBytes];
            if (!skipHashCheck && !SHA256.HashData(database).AsSpan().SequenceEqual(file.AsSpan(file.Length - HashSizeBytes)))
            {
                throw new InvalidDataException("the etcd snapshot is corrupt: its SHA-256 does not match its contents");
            }
        }
        else if (!skipHashCheck)
        {
            throw new InvalidDataException($"the etcd snapshot has no SHA-256 at its end ({file.Length} bytes: truncated, or a copied db file; use --skip-hash-check for the latter)");
        }

        var bolt = BoltFile.Open(database);
        var buckets = bolt.BucketNames();
        if (!buckets.Contains("key") || !buckets.Contains("meta"))
        {
            throw new InvalidDataException($"the bbolt file is not an etcd v3 backend: it has no key or meta bucket (buckets: {string.Join(", ", buckets)})");
        }

        long compacted = 0;
        foreach (var (name, value) in bolt.Read("meta"))
        {
            var key = Encoding.ASCII.GetString(name);
            if (key is "finishedCompactRev" or "scheduledCompactRev")
            {
                // A scheduled compaction that had not finished is completed by the import.
                compacted = Math.Max(compacted, ParseRevision(value, $"meta/{key}").Main);
            }
        }

        var revisions = new List<ImportedRevision>();
        foreach (var (name, value) in bolt.Read("key"))
        {
            var (main, sub) = ParseRevision(name, "a key bucket entry");
            var tombstone = name.Length == RevisionKeySizeBytes + 1;
            var kv = Parse(KeyValue.Parser, value, $"the version at revision {main}.{sub}");
            revisions.Add(new ImportedRevision(main, sub, kv.Key, tombstone ? null : kv));
        }

        var leases = new List<(long, long)>();
        foreach (var (name, value) in bolt.Read("lease"))
        {
            var (id, ttl) = ParseLease(value);
            if (name.Length != 8 || BinaryPrimitives.ReadInt64BigEndian(name) != id)
            {
                throw new InvalidDataException($"a lease entry's key does not match its lease {id}");
            }

            leases.Add((id, ttl));
        }

        return new ImportedStore
        {
            Revisions = revisions,
            CompactRevision = compacted,
            Leases = leases,
            Auth = ReadAuth(bolt),
        };
    }

    private static AuthStoreImage? ReadAuth(BoltFile bolt)
    {
        var image = new AuthStoreImage();
        foreach (var (name, value) in bolt.Read("auth"))
        {
            switch (Encoding.ASCII.GetString(name))
            {
                case "authEnabled":
                    image.Enabled = value.Length == 1 && value[0] == 1;
                    break;
                case "authRevision" when value.Length == 8:
                    image.Revision = BinaryPrimitives.ReadUInt64BigEndian(value);
                    break;
            }
        }

        foreach (var (_, value) in bolt.Read("authUsers"))
        {
            image.Users.Add(Parse(User.Parser, value, "a user"));
        }

        foreach (var (_, value) in bolt.Read("authRoles"))
        {
            image.Roles.Add(Parse(Role.Parser, value, "a role"));
        }

        return image.Users.Count == 0 && image.Roles.Count == 0 && !image.Enabled ? null : image;
    }

    /// <summary>etcd's revision keys: 8 bytes main, '_', 8 bytes sub (big-endian), and 't' on a deletion.</summary>
    private static (long Main, long Sub) ParseRevision(byte[] bytes, string what)
    {
        if (bytes.Length is not (RevisionKeySizeBytes or RevisionKeySizeBytes + 1) || bytes[8] != (byte)'_' ||
            (bytes.Length == RevisionKeySizeBytes + 1 && bytes[^1] != TombstoneMark))
        {
            throw new InvalidDataException($"{what} is not an etcd revision ({bytes.Length} bytes: {Convert.ToHexString(bytes.AsSpan(0, Math.Min(bytes.Length, 24)))})");
        }

        return (BinaryPrimitives.ReadInt64BigEndian(bytes), BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(9)));
    }

    /// <summary>leasepb.Lease: ID = 1, TTL = 2 (RemainingTTL = 3, of checkpointed leases, is not kept: leases restart at their TTL).</summary>
    private static (long Id, long TtlSeconds) ParseLease(byte[] bytes)
    {
        long id = 0, ttl = 0;
        try
        {
            var input = new CodedInputStream(bytes);
            uint tag;
            while ((tag = input.ReadTag()) != 0)
            {
                switch (tag)
                {
                    case 8:
                        id = input.ReadInt64();
                        break;
                    case 16:
                        ttl = input.ReadInt64();
                        break;
                    default:
                        input.SkipLastField();
                        break;
                }
            }
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"a lease entry is malformed: {e.Message}", e);
        }

        return (id, ttl);
    }

    private static T Parse<T>(MessageParser<T> parser, byte[] bytes, string what)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{what} in the etcd snapshot is malformed: {e.Message}", e);
        }
    }
}
