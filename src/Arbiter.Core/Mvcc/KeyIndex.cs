using Google.Protobuf;

namespace Arbiter.Core.Mvcc;

/// <summary>
/// Ordered map from key to <see cref="KeyRecord"/> (a treap): O(log n) lookup, insert and removal,
/// O(log n + k) range scans. Priorities come from a counter hashed with splitmix64, so the shape is
/// deterministic (and never affects results anyway). The records are the tree's nodes (their
/// <c>Treap*</c> fields): no node object per key.
/// </summary>
internal sealed class KeyIndex
{
    private KeyRecord? _root;
    private ulong _priorityCounter;

    public int Count { get; private set; }

    public KeyRecord? Get(ByteString key)
    {
        var n = _root;
        var span = key.Span;
        while (n != null)
        {
            var c = span.SequenceCompareTo(n.Key.Span);
            if (c == 0)
            {
                return n;
            }

            n = c < 0 ? n.TreapLeft : n.TreapRight;
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

        var record = new KeyRecord(key) { TreapPriority = (uint)(SplitMix64.Next(ref _priorityCounter) >> 32) };
        _root = Insert(_root, record);
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
    /// <remarks>Lazy: the index must not change while the result is enumerated (a removed record loses its children).</remarks>
    public IEnumerable<KeyRecord> Range(ByteString start, ByteString? end)
    {
        var stack = new Stack<KeyRecord>();
        var n = _root;
        while (n != null)
        {
            if (KeyComparer.CompareKeys(n.Key, start) >= 0)
            {
                stack.Push(n);
                n = n.TreapLeft;
            }
            else
            {
                n = n.TreapRight;
            }
        }

        while (stack.Count > 0)
        {
            var x = stack.Pop();
            if (end != null && KeyComparer.CompareKeys(x.Key, end) >= 0)
            {
                yield break;
            }

            yield return x;
            n = x.TreapRight;
            while (n != null)
            {
                stack.Push(n);
                n = n.TreapLeft;
            }
        }
    }

    private static KeyRecord Insert(KeyRecord? root, KeyRecord node)
    {
        if (root == null)
        {
            return node;
        }

        if (KeyComparer.CompareKeys(node.Key, root.Key) < 0)
        {
            var left = Insert(root.TreapLeft, node);
            root.TreapLeft = left;
            if (left.TreapPriority > root.TreapPriority)
            {
                root.TreapLeft = left.TreapRight;
                left.TreapRight = root;
                return left;
            }
        }
        else
        {
            var right = Insert(root.TreapRight, node);
            root.TreapRight = right;
            if (right.TreapPriority > root.TreapPriority)
            {
                root.TreapRight = right.TreapLeft;
                right.TreapLeft = root;
                return right;
            }
        }

        return root;
    }

    private static KeyRecord? Remove(KeyRecord? root, KeyRecord record, ref bool removed)
    {
        if (root == null)
        {
            return null;
        }

        var c = KeyComparer.CompareKeys(record.Key, root.Key);
        if (c < 0)
        {
            root.TreapLeft = Remove(root.TreapLeft, record, ref removed);
            return root;
        }

        if (c > 0)
        {
            root.TreapRight = Remove(root.TreapRight, record, ref removed);
            return root;
        }

        if (!ReferenceEquals(root, record))
        {
            return root;
        }

        removed = true;
        var merged = Merge(root.TreapLeft, root.TreapRight);

        // The event history may keep a removed record for a while: it must not keep the tree too.
        root.TreapLeft = null;
        root.TreapRight = null;
        return merged;
    }

    private static KeyRecord? Merge(KeyRecord? a, KeyRecord? b)
    {
        if (a == null)
        {
            return b;
        }

        if (b == null)
        {
            return a;
        }

        if (a.TreapPriority > b.TreapPriority)
        {
            a.TreapRight = Merge(a.TreapRight, b);
            return a;
        }

        b.TreapLeft = Merge(a, b.TreapLeft);
        return b;
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
