using System.Buffers.Binary;
using System.Text;

namespace Arbiter.Node.Backup.Etcd;

/// <summary>
/// A read-only reader of a bbolt database file, the format etcd keeps its backend in and streams as a
/// snapshot: two meta pages (the newer valid one names the root), B+tree branch and leaf pages, buckets
/// as leaf values (inline when small), overflow pages for big nodes. Untrusted input: every offset,
/// page id and length is checked against the file, every page is visited at most once per bucket walk
/// (no cycles), and any inconsistency is an <see cref="InvalidDataException"/> that says where.
/// </summary>
public sealed class BoltFile
{
    /// <summary>bbolt's magic number, in every meta page.</summary>
    public const uint Magic = 0xED0CDAED;

    private const int PageHeaderSizeBytes = 16;
    private const int MetaSizeBytes = 64;
    private const int BucketHeaderSizeBytes = 16;
    private const int ElementSizeBytes = 16;
    private const ushort BranchPageFlag = 0x01;
    private const ushort LeafPageFlag = 0x02;
    private const ushort MetaPageFlag = 0x04;
    private const uint BucketLeafFlag = 0x01;
    private const int PageSizeBytesMin = 512;
    private const int PageSizeBytesMax = 1 << 20;

    private readonly byte[] _data;
    private readonly int _pageSizeBytes;
    private readonly ulong _rootPageId;

    private BoltFile(byte[] data, int pageSizeBytes, ulong rootPageId, ulong transactionId)
    {
        _data = data;
        _pageSizeBytes = pageSizeBytes;
        _rootPageId = rootPageId;
        TransactionId = transactionId;
    }

    /// <summary>The id of the transaction the chosen meta page was written by.</summary>
    public ulong TransactionId { get; }

    /// <summary>True when <paramref name="data"/> starts like a bbolt file (a meta page with bbolt's magic).</summary>
    public static bool LooksLikeBolt(ReadOnlySpan<byte> data) =>
        data.Length >= PageHeaderSizeBytes + 4 && BinaryPrimitives.ReadUInt32LittleEndian(data[PageHeaderSizeBytes..]) == Magic;

    /// <summary>Opens <paramref name="data"/> (the whole file, already in memory) as a bbolt database.</summary>
    /// <exception cref="InvalidDataException">Neither meta page is valid.</exception>
    public static BoltFile Open(byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!LooksLikeBolt(data))
        {
            throw new InvalidDataException("not a bbolt database: no bbolt magic in the first meta page");
        }

        // The first meta page tells the page size; the second sits one page later.
        var pageSize = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(PageHeaderSizeBytes + 8)), int.MaxValue);
        if (pageSize is < PageSizeBytesMin or > PageSizeBytesMax || (pageSize & (pageSize - 1)) != 0)
        {
            throw new InvalidDataException($"bbolt meta page announces a page size of {pageSize} bytes");
        }

        (ulong Root, ulong TxId)? best = null;
        string? firstProblem = null;
        for (var page = 0; page < 2; page++)
        {
            var problem = TryReadMeta(data, page, pageSize, out var root, out var txId);
            if (problem is not null)
            {
                firstProblem ??= problem;
                continue;
            }

            if (best is null || txId > best.Value.TxId)
            {
                best = (root, txId);
            }
        }

        if (best is null)
        {
            throw new InvalidDataException($"bbolt database has no valid meta page ({firstProblem})");
        }

        return new BoltFile(data, pageSize, best.Value.Root, best.Value.TxId);
    }

    /// <summary>The names of the top-level buckets.</summary>
    public IReadOnlyList<string> BucketNames()
    {
        var names = new List<string>();
        foreach (var (key, _, isBucket) in Walk(_rootPageId, inline: null, "root"))
        {
            if (isBucket)
            {
                names.Add(Encoding.UTF8.GetString(key));
            }
        }

        return names;
    }

    /// <summary>
    /// Every key and value of the top-level bucket <paramref name="bucket"/>, in key order (empty when
    /// the bucket does not exist). Nested buckets are skipped (etcd's backend has none).
    /// </summary>
    public IEnumerable<(byte[] Key, byte[] Value)> Read(string bucket)
    {
        ArgumentNullException.ThrowIfNull(bucket);
        var name = Encoding.UTF8.GetBytes(bucket);
        foreach (var (key, value, isBucket) in Walk(_rootPageId, inline: null, "root"))
        {
            if (!isBucket || !key.AsSpan().SequenceEqual(name))
            {
                continue;
            }

            if (value.Length < BucketHeaderSizeBytes)
            {
                throw new InvalidDataException($"bbolt bucket {bucket} has a {value.Length}-byte header");
            }

            var root = BinaryPrimitives.ReadUInt64LittleEndian(value);
            var inline = root == 0 ? value.AsMemory(BucketHeaderSizeBytes) : (ReadOnlyMemory<byte>?)null;
            foreach (var (k, v, nested) in Walk(root, inline, bucket))
            {
                if (!nested)
                {
                    yield return (k, v);
                }
            }

            yield break;
        }
    }

    private static string? TryReadMeta(byte[] data, int page, int pageSize, out ulong root, out ulong txId)
    {
        root = 0;
        txId = 0;
        var offset = (long)page * pageSize;
        if (offset + PageHeaderSizeBytes + MetaSizeBytes > data.Length)
        {
            return $"meta page {page} is past the end of the file";
        }

        var header = data.AsSpan((int)offset);
        if ((BinaryPrimitives.ReadUInt16LittleEndian(header[8..]) & MetaPageFlag) == 0)
        {
            return $"page {page} is not a meta page";
        }

        var meta = header.Slice(PageHeaderSizeBytes, MetaSizeBytes);
        if (BinaryPrimitives.ReadUInt32LittleEndian(meta) != Magic)
        {
            return $"meta page {page} has no bbolt magic";
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(meta[4..]) != 2)
        {
            return $"meta page {page} has bbolt format version {BinaryPrimitives.ReadUInt32LittleEndian(meta[4..])}, not 2";
        }

        // The checksum is FNV-1a (64 bit) of the meta fields before it.
        var checksum = BinaryPrimitives.ReadUInt64LittleEndian(meta[56..]);
        if (Fnv1a64(meta[..56]) != checksum)
        {
            return $"meta page {page} fails its checksum";
        }

        root = BinaryPrimitives.ReadUInt64LittleEndian(meta[16..]);
        txId = BinaryPrimitives.ReadUInt64LittleEndian(meta[48..]);
        var highWater = BinaryPrimitives.ReadUInt64LittleEndian(meta[40..]);
        if (highWater > (ulong)data.Length / (ulong)pageSize + 1 || root >= highWater)
        {
            return $"meta page {page} names page {root} of {highWater}, but the file holds {data.Length / pageSize} pages (truncated?)";
        }

        return null;
    }

    private static ulong Fnv1a64(ReadOnlySpan<byte> bytes)
    {
        var hash = 0xcbf29ce484222325UL;
        foreach (var b in bytes)
        {
            hash ^= b;
            hash *= 0x100000001b3UL;
        }

        return hash;
    }

    /// <summary>Every entry, depth-first in key order, over the tree rooted at <paramref name="rootPageId"/> (or the inline page).</summary>
    private List<(byte[] Key, byte[] Value, bool IsBucket)> Walk(ulong rootPageId, ReadOnlyMemory<byte>? inline, string bucket)
    {
        var entries = new List<(byte[] Key, byte[] Value, bool IsBucket)>();
        var visited = new HashSet<ulong>();
        var pending = new Stack<ReadOnlyMemory<byte>>();
        pending.Push(inline ?? PageAt(rootPageId, visited, bucket));
        while (pending.Count > 0)
        {
            var page = pending.Pop();
            var span = page.Span;
            if (span.Length < PageHeaderSizeBytes)
            {
                throw new InvalidDataException($"bbolt bucket {bucket}: a page shorter than its header");
            }

            var flags = BinaryPrimitives.ReadUInt16LittleEndian(span[8..]);
            var count = BinaryPrimitives.ReadUInt16LittleEndian(span[10..]);
            if (PageHeaderSizeBytes + ((long)count * ElementSizeBytes) > span.Length)
            {
                throw new InvalidDataException($"bbolt bucket {bucket}: a page announces {count} elements that do not fit in it");
            }

            if ((flags & LeafPageFlag) != 0)
            {
                // Leaf pages yield their entries at once; children of a branch were pushed in reverse.
                for (var i = 0; i < count; i++)
                {
                    var element = PageHeaderSizeBytes + (i * ElementSizeBytes);
                    var elementFlags = BinaryPrimitives.ReadUInt32LittleEndian(span[element..]);
                    var position = BinaryPrimitives.ReadUInt32LittleEndian(span[(element + 4)..]);
                    var keySize = BinaryPrimitives.ReadUInt32LittleEndian(span[(element + 8)..]);
                    var valueSize = BinaryPrimitives.ReadUInt32LittleEndian(span[(element + 12)..]);
                    var start = (long)element + position;
                    if (start + keySize + valueSize > span.Length)
                    {
                        throw new InvalidDataException($"bbolt bucket {bucket}: a leaf entry runs past its page");
                    }

                    var key = span.Slice((int)start, (int)keySize).ToArray();
                    var value = span.Slice((int)(start + keySize), (int)valueSize).ToArray();
                    entries.Add((key, value, (elementFlags & BucketLeafFlag) != 0));
                }
            }
            else if ((flags & BranchPageFlag) != 0)
            {
                for (var i = count - 1; i >= 0; i--)
                {
                    var element = PageHeaderSizeBytes + (i * ElementSizeBytes);
                    var child = BinaryPrimitives.ReadUInt64LittleEndian(span[(element + 8)..]);
                    pending.Push(PageAt(child, visited, bucket));
                }
            }
            else
            {
                throw new InvalidDataException($"bbolt bucket {bucket}: a page with flags 0x{flags:x} where a branch or leaf belongs");
            }
        }

        return entries;
    }

    private ReadOnlyMemory<byte> PageAt(ulong pageId, HashSet<ulong> visited, string bucket)
    {
        if (!visited.Add(pageId))
        {
            throw new InvalidDataException($"bbolt bucket {bucket}: page {pageId} is reached twice (a cycle)");
        }

        var offset = pageId * (ulong)_pageSizeBytes;
        if (pageId < 2 || offset + PageHeaderSizeBytes > (ulong)_data.Length)
        {
            throw new InvalidDataException($"bbolt bucket {bucket}: page {pageId} is not in the file (truncated?)");
        }

        var overflow = BinaryPrimitives.ReadUInt32LittleEndian(_data.AsSpan((int)offset + 12));
        var length = ((ulong)overflow + 1) * (ulong)_pageSizeBytes;
        if (offset + length > (ulong)_data.Length)
        {
            throw new InvalidDataException($"bbolt bucket {bucket}: page {pageId} and its {overflow} overflow pages run past the end of the file");
        }

        return _data.AsMemory((int)offset, (int)length);
    }
}
