using Google.Protobuf;

namespace Arbiter.Core.Mvcc;

/// <summary>
/// Ordered map from key to <see cref="KeyRecord"/> (a treap): O(log n) lookup, insert and removal,
/// O(log n + k) range scans. Priorities come from a counter hashed with splitmix64, so the shape is
/// deterministic (and never affects results anyway).
/// </summary>
internal sealed class KeyIndex
{
    private Node? _root;
    private ulong _priorityCounter;

    public int Count { get; private set; }

    public KeyRecord? Get(ByteString key)
    {
        var n = _root;
        var span = key.Span;
        while (n != null)
        {
            var c = span.SequenceCompareTo(n.Record.Key.Span);
            if (c == 0)
            {
                return n.Record;
            }

            n = c < 0 ? n.Left : n.Right;
        }

        return null;
    }

    public KeyRecord GetOrAdd(ByteString key)
    {
        var existing = Get(key);
        if (existing != null)
        {
            return existing;
        }

        var record = new KeyRecord(key);
        var node = new Node(record, SplitMix64.Next(ref _priorityCounter));
        _root = Insert(_root, node);
        Count++;
        return record;
    }

    /// <summary>Removes the record for <paramref name="record"/>'s key only if it is that very record.</summary>
    public bool Remove(KeyRecord record)
    {
        var removed = false;
        _root = Remove(_root, record, ref removed);
        if (removed)
        {
            Count--;
        }

        return removed;
    }

    /// <summary>Records with start ≤ key &lt; end (end null = unbounded), ascending.</summary>
    public IEnumerable<KeyRecord> Range(ByteString start, ByteString? end)
    {
        var stack = new Stack<Node>();
        var n = _root;
        while (n != null)
        {
            if (KeyComparer.CompareKeys(n.Record.Key, start) >= 0)
            {
                stack.Push(n);
                n = n.Left;
            }
            else
            {
                n = n.Right;
            }
        }

        while (stack.Count > 0)
        {
            var x = stack.Pop();
            if (end != null && KeyComparer.CompareKeys(x.Record.Key, end) >= 0)
            {
                yield break;
            }

            yield return x.Record;
            n = x.Right;
            while (n != null)
            {
                stack.Push(n);
                n = n.Left;
            }
        }
    }

    private static Node Insert(Node? root, Node node)
    {
        if (root == null)
        {
            return node;
        }

        if (KeyComparer.CompareKeys(node.Record.Key, root.Record.Key) < 0)
        {
            root.Left = Insert(root.Left, node);
            if (root.Left.Priority > root.Priority)
            {
                var l = root.Left;
                root.Left = l.Right;
                l.Right = root;
                return l;
            }
        }
        else
        {
            root.Right = Insert(root.Right, node);
            if (root.Right.Priority > root.Priority)
            {
                var r = root.Right;
                root.Right = r.Left;
                r.Left = root;
                return r;
            }
        }

        return root;
    }

    private static Node? Remove(Node? root, KeyRecord record, ref bool removed)
    {
        if (root == null)
        {
            return null;
        }

        var c = KeyComparer.CompareKeys(record.Key, root.Record.Key);
        if (c < 0)
        {
            root.Left = Remove(root.Left, record, ref removed);
            return root;
        }

        if (c > 0)
        {
            root.Right = Remove(root.Right, record, ref removed);
            return root;
        }

        if (!ReferenceEquals(root.Record, record))
        {
            return root;
        }

        removed = true;
        return Merge(root.Left, root.Right);
    }

    private static Node? Merge(Node? a, Node? b)
    {
        if (a == null)
        {
            return b;
        }

        if (b == null)
        {
            return a;
        }

        if (a.Priority > b.Priority)
        {
            a.Right = Merge(a.Right, b);
            return a;
        }

        b.Left = Merge(a, b.Left);
        return b;
    }

    private sealed class Node(KeyRecord record, ulong priority)
    {
        public KeyRecord Record { get; } = record;

        public ulong Priority { get; } = priority;

        public Node? Left { get; set; }

        public Node? Right { get; set; }
    }
}

/// <summary>splitmix64: a tiny, well-mixed deterministic sequence.</summary>
internal static class SplitMix64
{
    public static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    public static ulong Next(ref ulong state)
    {
        state++;
        return Mix(state);
    }
}

/// <summary>32-bit FNV-1a over a canonical byte stream (Core takes no hashing dependency).</summary>
internal struct Fnv1a
{
    private uint _hash;

    public static Fnv1a Create() => new() { _hash = 2166136261u };

    public readonly uint Value => _hash;

    public void Add(ReadOnlySpan<byte> bytes)
    {
        var h = _hash;
        foreach (var b in bytes)
        {
            h = (h ^ b) * 16777619u;
        }

        _hash = h;
    }

    public void Add(long value)
    {
        Span<byte> buffer = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(buffer, value);
        Add(buffer);
    }

    /// <summary>Length-prefixed, so adjacent fields cannot alias.</summary>
    public void AddBytes(ReadOnlySpan<byte> bytes)
    {
        Add(bytes.Length);
        Add(bytes);
    }
}
