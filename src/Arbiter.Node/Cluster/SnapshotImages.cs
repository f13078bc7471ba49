using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;

namespace Arbiter.Node.Cluster;

/// <summary>
/// The state images behind Raft snapshots, kept beside DotNext's snapshot files (<c>member/snap-images</c>).
/// DotNext's snapshot file holds only a <see cref="SnapshotTicket"/>: DotNext ships that file to a
/// lagging follower inside one InstallSnapshot request, which must complete within the Raft
/// request timeout (a few hundred ms), so a state of tens of MB could never be installed and the
/// member never caught up. The follower fetches the image itself (<c>Peer.FetchSnapshotImage</c>),
/// keeps it here, and installs the ticket once the image is on disk and parsed.
/// </summary>
internal sealed class SnapshotImages
{
    private const string Extension = ".img";
    private readonly DirectoryInfo _directory;

    public SnapshotImages(string directory)
    {
        _directory = Directory.CreateDirectory(directory);
        foreach (var partial in _directory.EnumerateFiles("*.tmp"))
        {
            partial.Delete(); // a write or fetch cut by a crash
        }
    }

    public string PathOf(long index, long term) =>
        Path.Combine(_directory.FullName, string.Create(CultureInfo.InvariantCulture, $"{index}-{term}{Extension}"));

    /// <summary>Writes an image durably (temporary file, fsync, rename) and returns its ticket.</summary>
    public SnapshotTicket Write(long index, long term, Action<Stream> writeImage)
    {
        // Streamed to the file and hashed on the way: a state of gigabytes is never one buffer.
        var path = PathOf(index, term);
        var temporary = path + ".tmp";
        try
        {
            long length;
            byte[] hash;
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            using (var sha256 = SHA256.Create())
            {
                using (var hashing = new CryptoStream(file, sha256, CryptoStreamMode.Write, leaveOpen: true))
                {
                    writeImage(hashing);
                }

                file.Flush(flushToDisk: true);
                length = file.Length;
                hash = sha256.Hash!;
            }

            File.Move(temporary, path, overwrite: true);
            return new SnapshotTicket(index, term, length, hash);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Stores an image received from another member, if it matches its ticket.</summary>
    /// <exception cref="InvalidDataException">The bytes are not the image the ticket names.</exception>
    public async Task StoreAsync(SnapshotTicket ticket, Func<Stream, CancellationToken, Task> copy, CancellationToken cancellationToken)
    {
        var path = PathOf(ticket.Index, ticket.Term);
        var temporary = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        try
        {
            await using (var file = new FileStream(temporary, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16, useAsync: true))
            {
                await copy(file, cancellationToken).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
                file.Position = 0;
                var hash = await SHA256.HashDataAsync(file, cancellationToken).ConfigureAwait(false);
                if (file.Length != ticket.LengthBytes || !hash.AsSpan().SequenceEqual(ticket.Sha256))
                {
                    throw new InvalidDataException(
                        $"the image received for Raft snapshot {ticket.Index}-{ticket.Term} is not the one its ticket names ({file.Length} of {ticket.LengthBytes} bytes, or another SHA-256)");
                }
            }

            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>Opens the image for reading, or null when this member does not have it (complete and matching).</summary>
    public FileStream? TryOpen(long index, long term)
    {
        try
        {
            return new FileStream(PathOf(index, term), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, useAsync: true);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    public bool Has(SnapshotTicket ticket) => new FileInfo(PathOf(ticket.Index, ticket.Term)) is { Exists: true } file && file.Length == ticket.LengthBytes;

    /// <summary>Deletes images older than <paramref name="keepFromIndex"/> that no snapshot file names any more.</summary>
    public void DeleteUnreferenced(long keepFromIndex, IReadOnlySet<string> referenced)
    {
        foreach (var image in _directory.EnumerateFiles("*" + Extension))
        {
            var name = Path.GetFileNameWithoutExtension(image.Name);
            if (!referenced.Contains(name) && long.TryParse(name.Split('-')[0], CultureInfo.InvariantCulture, out var index) && index < keepFromIndex)
            {
                image.Delete();
            }
        }
    }
}

/// <summary>
/// What DotNext's snapshot file holds: which image, how long, its SHA-256, and (version 2) the
/// client URLs of the member that wrote it. DotNext sends this file to a lagging follower, which
/// fetches the image over the client port; a follower that was wiped knows no member yet (DotNext
/// learns the configuration from AppendEntries, and a follower behind the leader's snapshot gets
/// only InstallSnapshot), so the ticket says where its image is.
/// </summary>
internal sealed record SnapshotTicket(long Index, long Term, long LengthBytes, byte[] Sha256)
{
    /// <summary>Distinct from a full image's magic (<c>StateSnapshot.Magic</c>), which older data dirs and restored seeds hold.</summary>
    private static ReadOnlySpan<byte> Magic => "ARBITER-SNAPSHOT-TICKET-1\n"u8;

    /// <summary>Version 2: the version 1 fields, then the writer's advertised client URLs (a 2-byte length, UTF-8).</summary>
    private static ReadOnlySpan<byte> MagicWithSource => "ARBITER-SNAPSHOT-TICKET-2\n"u8;

    private const int Sha256SizeBytes = 32;

    private const int SourceLengthMax = 4096;

    /// <summary>The advertised client URLs (comma-separated) of the member that wrote the ticket; null in a version 1 ticket.</summary>
    public string? SourceClientUrls { get; init; }

    /// <summary>Tickets are equal when they name the same image (the hash compared by content; the source does not count).</summary>
    public bool Equals(SnapshotTicket? other) =>
        other is not null && Index == other.Index && Term == other.Term && LengthBytes == other.LengthBytes && Sha256.AsSpan().SequenceEqual(other.Sha256);

    public override int GetHashCode() => HashCode.Combine(Index, Term, LengthBytes);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Index}-{Term} ({LengthBytes} bytes)");

    /// <summary>Size of a version 1 ticket (all of it fixed).</summary>
    public static int SizeBytes => Magic.Length + FixedSizeBytes;

    private static int FixedSizeBytes => (3 * sizeof(long)) + Sha256SizeBytes;

    /// <summary>The largest ticket of either version.</summary>
    public static int SizeBytesMax => MagicWithSource.Length + FixedSizeBytes + sizeof(ushort) + SourceLengthMax;

    public byte[] ToBytes()
    {
        var source = SourceClientUrls is null ? null : System.Text.Encoding.UTF8.GetBytes(SourceClientUrls);
        if (source is { Length: > SourceLengthMax })
        {
            source = null;   // not worth failing a snapshot over: the follower then asks the members it knows
        }

        var magic = source is null ? Magic : MagicWithSource;
        var bytes = new byte[magic.Length + FixedSizeBytes + (source is null ? 0 : sizeof(ushort) + source.Length)];
        var span = bytes.AsSpan();
        magic.CopyTo(span);
        span = span[magic.Length..];
        BinaryPrimitives.WriteInt64LittleEndian(span, Index);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], Term);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], LengthBytes);
        Sha256.CopyTo(span[24..]);
        if (source is not null)
        {
            span = span[FixedSizeBytes..];
            BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)source.Length);
            source.CopyTo(span[sizeof(ushort)..]);
        }

        return bytes;
    }

    /// <summary>Reads a ticket of either version, or returns null when the bytes are something else (a full image).</summary>
    /// <exception cref="InvalidDataException">The bytes start like a ticket but are cut or malformed.</exception>
    public static SnapshotTicket? TryParse(ReadOnlySpan<byte> bytes)
    {
        var withSource = bytes.StartsWith(MagicWithSource);
        if (!withSource && !bytes.StartsWith(Magic))
        {
            return null;
        }

        var magicLength = withSource ? MagicWithSource.Length : Magic.Length;
        var fixedEnd = magicLength + FixedSizeBytes;
        if (withSource ? bytes.Length < fixedEnd + sizeof(ushort) : bytes.Length != SizeBytes)
        {
            throw new InvalidDataException($"a Raft snapshot ticket of {bytes.Length} bytes, not {(withSource ? $"at least {fixedEnd + sizeof(ushort)}" : SizeBytes)}");
        }

        string? source = null;
        if (withSource)
        {
            var length = BinaryPrimitives.ReadUInt16LittleEndian(bytes[fixedEnd..]);
            if (length > SourceLengthMax || bytes.Length != fixedEnd + sizeof(ushort) + length)
            {
                throw new InvalidDataException($"a Raft snapshot ticket of {bytes.Length} bytes whose source takes {length}");
            }

            source = System.Text.Encoding.UTF8.GetString(bytes.Slice(fixedEnd + sizeof(ushort), length));
        }

        var body = bytes[magicLength..];
        var ticket = new SnapshotTicket(
            BinaryPrimitives.ReadInt64LittleEndian(body),
            BinaryPrimitives.ReadInt64LittleEndian(body[8..]),
            BinaryPrimitives.ReadInt64LittleEndian(body[16..]),
            body[24..FixedSizeBytes].ToArray())
        { SourceClientUrls = source };
        return ticket.LengthBytes < 0 ? throw new InvalidDataException("a Raft snapshot ticket with a negative length") : ticket;
    }

    /// <summary>Reads the ticket in a snapshot file, or null when the file holds a full image.</summary>
    public static SnapshotTicket? TryRead(FileInfo file)
    {
        if (file.Length > SizeBytesMax)
        {
            using var stream = file.OpenRead();
            Span<byte> head = stackalloc byte[Magic.Length];
            return stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) == head.Length && (head.SequenceEqual(Magic) || head.SequenceEqual(MagicWithSource))
                ? throw new InvalidDataException($"Raft snapshot file {file.Name} starts like a ticket but holds {file.Length} bytes")
                : null;
        }

        return TryParse(File.ReadAllBytes(file.FullName));
    }
}
