using System.Buffers;

namespace Arbiter.Server.Http2;

/// <summary>A growable byte buffer on <see cref="ArrayPool{T}.Shared"/> with a hard size cap.</summary>
internal sealed class PooledByteBuffer : IDisposable
{
    private readonly int _sizeBytesMax;
    private byte[] _array = [];

    /// <summary>Creates an empty buffer that refuses to grow beyond <paramref name="sizeBytesMax"/>.</summary>
    public PooledByteBuffer(int sizeBytesMax) => _sizeBytesMax = sizeBytesMax;

    /// <summary>Bytes written so far.</summary>
    public int Length { get; private set; }

    /// <summary>Set when a write would have exceeded the cap; the write was dropped.</summary>
    public bool Overflowed { get; private set; }

    /// <summary>The bytes written so far.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _array.AsSpan(0, Length);

    /// <summary>Appends <paramref name="bytes"/>, or sets <see cref="Overflowed"/> if they do not fit under the cap.</summary>
    public void Write(ReadOnlySpan<byte> bytes)
    {
        if (TryGetSpan(bytes.Length, out var span))
        {
            bytes.CopyTo(span);
            Length += bytes.Length;
        }
    }

    /// <summary>Appends one byte.</summary>
    public void WriteByte(byte value)
    {
        if (TryGetSpan(1, out var span))
        {
            span[0] = value;
            Length++;
        }
    }

    /// <summary>Appends every segment of <paramref name="bytes"/>.</summary>
    public void Write(in ReadOnlySequence<byte> bytes)
    {
        foreach (var segment in bytes)
        {
            Write(segment.Span);
        }
    }

    /// <summary>Forgets the content and the overflow flag and gives the array back to the pool.</summary>
    public void Reset()
    {
        Length = 0;
        Overflowed = false;
        if (_array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_array);
            _array = [];
        }
    }

    /// <inheritdoc />
    public void Dispose() => Reset();

    private bool TryGetSpan(int sizeBytes, out Span<byte> span)
    {
        span = default;
        if (Overflowed || sizeBytes > _sizeBytesMax - Length)
        {
            Overflowed = true;
            return false;
        }

        if (_array.Length - Length < sizeBytes)
        {
            var grown = ArrayPool<byte>.Shared.Rent(Math.Min(_sizeBytesMax, Math.Max(Length + sizeBytes, Math.Max(256, _array.Length * 2))));
            _array.AsSpan(0, Length).CopyTo(grown);
            if (_array.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_array);
            }

            _array = grown;
        }

        span = _array.AsSpan(Length, sizeBytes);
        return true;
    }
}
