namespace Arbiter.Storage;

/// <summary>Write-only pass-through that feeds CRC-32C and counts bytes; leaves the inner stream open.</summary>
internal sealed class ChecksumWriteStream : Stream
{
    private readonly Stream _inner;

    public ChecksumWriteStream(Stream inner, uint state)
    {
        _inner = inner;
        State = state;
    }

    /// <summary>CRC-32C state (not finished) over everything written so far, seeded by the constructor.</summary>
    public uint State { get; private set; }

    public long LengthBytes { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => LengthBytes;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        State = Crc32C.Append(State, buffer);
        LengthBytes += buffer.Length;
        _inner.Write(buffer);
    }

    public override void WriteByte(byte value) => Write([value]);

    public override void Flush()
    {
        // Durability is handled by the snapshot writer (fsync after the trailer).
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
