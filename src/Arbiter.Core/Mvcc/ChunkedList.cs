namespace Arbiter.Core.Mvcc;

/// <summary>
/// An append-only list of structs kept in fixed-size chunks, with O(1) removal of a prefix.
/// Used for the store's event history, which grows by one entry per change for as long as nothing
/// is compacted: a <see cref="List{T}"/> would double one ever larger array (up to 2x the entries'
/// size held, and every old array left behind on the large object heap, which the GC does not
/// compact), while chunks below the large-object threshold cost at most one partly filled chunk.
/// </summary>
/// <typeparam name="T">The element type (a small struct).</typeparam>
internal sealed class ChunkedList<T>
    where T : struct
{
    // 1,024 entries of HistoryChange (40 B) is 40 KiB: under the 85,000 B large-object threshold.
    private const int ChunkShift = 10;
    private const int ChunkLength = 1 << ChunkShift;
    private const int ChunkMask = ChunkLength - 1;

    private readonly List<T[]> _chunks = [];

    // Entries [0, _head) of the first chunk were removed.
    private int _head;

    /// <summary>Entries held.</summary>
    public int Count { get; private set; }

    /// <summary>The entry at <paramref name="index"/> (0 = the oldest kept).</summary>
    public ref readonly T this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(index));
            }

            var at = index + _head;
            return ref _chunks[at >> ChunkShift][at & ChunkMask];
        }
    }

    /// <summary>The newest entry; the list must not be empty.</summary>
    public ref readonly T Last => ref this[Count - 1];

    /// <summary>Appends <paramref name="item"/>.</summary>
    public void Add(in T item)
    {
        var at = _head + Count;
        if ((at & ChunkMask) == 0 && (at >> ChunkShift) == _chunks.Count)
        {
            _chunks.Add(new T[ChunkLength]);
        }

        _chunks[at >> ChunkShift][at & ChunkMask] = item;
        Count++;
    }

    /// <summary>Removes the oldest <paramref name="count"/> entries.</summary>
    public void RemoveFirst(int count)
    {
        if ((uint)count > (uint)Count)
        {
            throw new ArgumentOutOfRangeException(nameof(count));
        }

        // Cleared so removed entries keep nothing alive from a chunk that stays.
        for (var i = 0; i < count; i++)
        {
            var at = _head + i;
            _chunks[at >> ChunkShift][at & ChunkMask] = default;
        }

        _head += count;
        Count -= count;
        var freeChunks = _head >> ChunkShift;
        if (Count == 0)
        {
            // Everything removed: start again at the front of the first chunk.
            freeChunks = _chunks.Count;
            _head = 0;
        }
        else
        {
            _head &= ChunkMask;
        }

        _chunks.RemoveRange(0, freeChunks);
    }

    /// <summary>Entries oldest first, while <paramref name="predicate"/> holds.</summary>
    public IEnumerable<T> TakeWhile(Func<T, bool> predicate)
    {
        for (var i = 0; i < Count; i++)
        {
            var item = this[i];
            if (!predicate(item))
            {
                yield break;
            }

            yield return item;
        }
    }
}
