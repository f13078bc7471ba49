using System.Buffers;
using System.Buffers.Binary;

namespace Arbiter.Server.Http2;

/// <summary>
/// Rewrites the client-to-server bytes of one HTTP/2 connection so that an <c>:authority</c>
/// carrying a scheme (<c>http://host:port</c>) reaches Kestrel as <c>host:port</c>.
/// </summary>
/// <remarks>
/// Every frame but HEADERS/CONTINUATION is forwarded byte for byte, streamed as it arrives.
/// Header blocks are decoded with full HPACK state. Until a block needs a rewrite, blocks are
/// forwarded unchanged (so ordinary clients see no difference); from the first rewrite on,
/// every block is re-encoded as literals that never touch Kestrel's dynamic table, because the
/// client's indexes no longer match what Kestrel has seen.
/// Failures: a frame-level protocol violation is forwarded unchanged and the rest of the
/// connection passes through untouched, for Kestrel to report. A header block over
/// <see cref="HeaderBlockSizeBytesMax"/> or one that fails HPACK decoding is treated the same
/// while no block was rewritten; after a rewrite, forwarding it raw could make Kestrel
/// resolve indexes to the wrong headers, so <see cref="Process"/> throws
/// <see cref="InvalidDataException"/> and the caller aborts the connection.
/// </remarks>
internal sealed class Http2AuthorityRewriter : IHpackHeaderSink, IDisposable
{
    /// <summary>Largest header block (fragments of HEADERS plus CONTINUATIONs) that is buffered and decoded.</summary>
    public const int HeaderBlockSizeBytesMax = 64 * 1024;

    private const int FrameHeaderSizeBytes = 9;
    private const int PrioritySizeBytes = 5;
    private const byte TypeHeaders = 0x1;
    private const byte TypeContinuation = 0x9;
    private const byte FlagEndStream = 0x1;
    private const byte FlagEndHeaders = 0x4;
    private const byte FlagPadded = 0x8;
    private const byte FlagPriority = 0x20;

    // Raw frames of a block add headers, pad lengths, priority and padding to its fragments.
    private const int RawBlockSizeBytesMax = 2 * HeaderBlockSizeBytesMax;

    // Re-encoding expands indexed fields; Kestrel's own header limits are far below this.
    private const int EncodedBlockSizeBytesMax = 4 * HeaderBlockSizeBytesMax;

    private readonly HpackDecoder _decoder;
    private readonly int _frameSizeBytesMax;
    private readonly PooledByteBuffer _rawFrames = new(RawBlockSizeBytesMax);
    private readonly PooledByteBuffer _fragments = new(HeaderBlockSizeBytesMax);
    private readonly PooledByteBuffer _encoded = new(EncodedBlockSizeBytesMax);
    private readonly byte[] _priority = new byte[PrioritySizeBytes];
    private int _prefaceMatchedBytes;
    private long _forwardRemainingBytes;
    private bool _inBlock;
    private int _blockStreamId;
    private byte _blockFlags;
    private bool _blockNeedsRewrite;
    private bool _encodingSkipped;

    /// <summary>Creates a rewriter for a server that advertised these HTTP/2 settings.</summary>
    /// <param name="frameSizeBytesMax">The server's SETTINGS_MAX_FRAME_SIZE: the largest frame it accepts.</param>
    /// <param name="headerTableSizeBytes">The server's SETTINGS_HEADER_TABLE_SIZE: the bound on the client's dynamic table.</param>
    public Http2AuthorityRewriter(int frameSizeBytesMax = 16 * 1024, int headerTableSizeBytes = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(frameSizeBytesMax, 16 * 1024);
        _frameSizeBytesMax = frameSizeBytesMax;
        _decoder = new HpackDecoder(headerTableSizeBytes);
    }

    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>True once the connection is forwarded verbatim without parsing.</summary>
    public bool PassingThrough { get; private set; }

    /// <summary>True once a block was rewritten, so all later blocks are re-encoded.</summary>
    public bool Rewriting { get; private set; }

    /// <summary>
    /// True while the preface, a frame whose payload is being forwarded, or a header block has begun
    /// and not ended (bytes held back by <see cref="Process"/> also mean a frame has begun); false
    /// once passing through.
    /// </summary>
    public bool MidFrame => !PassingThrough && ((_prefaceMatchedBytes > 0 && _prefaceMatchedBytes < Preface.Length) || _forwardRemainingBytes > 0 || _inBlock);

    /// <summary>
    /// Consumes what it can of <paramref name="input"/>, writing the result to
    /// <paramref name="output"/>, and returns how far it consumed; an incomplete frame is left
    /// for the next call with more bytes.
    /// </summary>
    /// <exception cref="InvalidDataException">The connection cannot continue safely (see remarks on the type).</exception>
    public SequencePosition Process(in ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var rest = input;
        Span<byte> header = stackalloc byte[FrameHeaderSizeBytes];
        while (!rest.IsEmpty)
        {
            if (PassingThrough)
            {
                Copy(rest, output);
                return input.End;
            }

            if (_prefaceMatchedBytes < Preface.Length)
            {
                rest = MatchPreface(rest, output);
                continue;
            }

            if (_forwardRemainingBytes > 0)
            {
                var chunk = rest.Slice(0, Math.Min(rest.Length, _forwardRemainingBytes));
                Copy(chunk, output);
                _forwardRemainingBytes -= chunk.Length;
                rest = rest.Slice(chunk.End);
                continue;
            }

            if (rest.Length < FrameHeaderSizeBytes)
            {
                break;
            }

            rest.Slice(0, FrameHeaderSizeBytes).CopyTo(header);
            var lengthBytes = (header[0] << 16) | (header[1] << 8) | header[2];
            var type = header[3];
            var flags = header[4];
            var streamId = BinaryPrimitives.ReadInt32BigEndian(header[5..]) & 0x7FFFFFFF;
            if (_inBlock && (type != TypeContinuation || streamId != _blockStreamId))
            {
                // RFC 9113 6.10: nothing may interleave a header block; Kestrel fails the connection.
                ForwardBufferedBlockAndPassThrough(output);
                continue;
            }

            if (type is not TypeHeaders and not TypeContinuation)
            {
                Copy(rest.Slice(0, FrameHeaderSizeBytes), output);
                rest = rest.Slice(FrameHeaderSizeBytes);
                _forwardRemainingBytes = lengthBytes;
                continue;
            }

            if (lengthBytes > _frameSizeBytesMax)
            {
                // FRAME_SIZE_ERROR for Kestrel.
                ForwardBufferedBlockAndPassThrough(output);
                continue;
            }

            if (rest.Length < FrameHeaderSizeBytes + lengthBytes)
            {
                break;
            }

            var frame = rest.Slice(0, FrameHeaderSizeBytes + lengthBytes);
            rest = rest.Slice(frame.End);
            if (type == TypeContinuation && !_inBlock)
            {
                // A CONTINUATION without HEADERS is Kestrel's protocol error to report.
                Copy(frame, output);
                PassingThrough = true;
                continue;
            }

            OnHeaderFrame(frame, type, flags, streamId, output);
        }

        return rest.Start;
    }

    /// <summary>Forwards bytes held back at the end of the input (a partial frame or block) as they are.</summary>
    public void FlushRemainder(in ReadOnlySequence<byte> unconsumed, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_inBlock)
        {
            ForwardBufferedBlockAndPassThrough(output);
        }

        Copy(unconsumed, output);
        PassingThrough = true;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _rawFrames.Dispose();
        _fragments.Dispose();
        _encoded.Dispose();
    }

    void IHpackHeaderSink.OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
    {
        if (!Rewriting && !_blockNeedsRewrite && !name.StartsWith((byte)':'))
        {
            // Pseudo-headers come first (RFC 9113 8.3), so this block will be forwarded as it
            // is: encoding the rest would be wasted work.
            _encodingSkipped = true;
        }

        if (_encodingSkipped)
        {
            // An :authority after a regular header is malformed anyway; Kestrel rejects it.
            return;
        }

        if (name.SequenceEqual(":authority"u8) && AuthorityNormalizer.TryNormalize(value, out var normalized))
        {
            value = normalized;
            _blockNeedsRewrite = true;
        }

        HpackLiteralEncoder.WriteLiteral(_encoded, name, value, neverIndexed);
    }

    private ReadOnlySequence<byte> MatchPreface(ReadOnlySequence<byte> rest, IBufferWriter<byte> output)
    {
        var count = (int)Math.Min(rest.Length, Preface.Length - _prefaceMatchedBytes);
        Span<byte> received = stackalloc byte[24];
        rest.Slice(0, count).CopyTo(received);
        if (!received[..count].SequenceEqual(Preface.Slice(_prefaceMatchedBytes, count)))
        {
            // Not HTTP/2 with prior knowledge: none of our business.
            PassingThrough = true;
            return rest;
        }

        Copy(rest.Slice(0, count), output);
        _prefaceMatchedBytes += count;
        return rest.Slice(count);
    }

    private void OnHeaderFrame(in ReadOnlySequence<byte> frame, byte type, byte flags, int streamId, IBufferWriter<byte> output)
    {
        var payload = frame.Slice(FrameHeaderSizeBytes);
        var fragment = payload;
        if (type == TypeHeaders)
        {
            var offset = 0L;
            var paddingBytes = 0;
            if ((flags & FlagPadded) != 0)
            {
                if (payload.Length < 1)
                {
                    ForwardAndPassThrough(frame, output);
                    return;
                }

                paddingBytes = payload.FirstSpan[0];
                offset = 1;
            }

            if ((flags & FlagPriority) != 0)
            {
                if (payload.Length < offset + PrioritySizeBytes)
                {
                    ForwardAndPassThrough(frame, output);
                    return;
                }

                payload.Slice(offset, PrioritySizeBytes).CopyTo(_priority);
                offset += PrioritySizeBytes;
            }

            if (paddingBytes > payload.Length - offset)
            {
                // PROTOCOL_ERROR for Kestrel (RFC 9113 6.2).
                ForwardAndPassThrough(frame, output);
                return;
            }

            fragment = payload.Slice(offset, payload.Length - offset - paddingBytes);
            _inBlock = true;
            _blockStreamId = streamId;
            _blockFlags = (byte)(flags & (FlagEndStream | FlagPriority));

            if ((flags & FlagEndHeaders) != 0 && fragment.IsSingleSegment)
            {
                // The common case: a whole block in one contiguous frame, no copy needed.
                FinishBlock(fragment.FirstSpan, frame, output);
                return;
            }
        }

        if (_rawFrames.Length + frame.Length > RawBlockSizeBytesMax || _fragments.Length + fragment.Length > HeaderBlockSizeBytesMax)
        {
            if (Rewriting)
            {
                throw new InvalidDataException($"HTTP/2 header block over {HeaderBlockSizeBytesMax} bytes after a rewrite; closing the connection.");
            }

            ForwardBufferedBlockAndPassThrough(output);
            Copy(frame, output);
            return;
        }

        _rawFrames.Write(frame);
        _fragments.Write(fragment);
        if ((flags & FlagEndHeaders) != 0)
        {
            FinishBlock(_fragments.WrittenSpan, ReadOnlySequence<byte>.Empty, output);
        }
    }

    // rawFrame is the single frame holding the block, or empty when the block is in _rawFrames.
    private void FinishBlock(ReadOnlySpan<byte> block, in ReadOnlySequence<byte> rawFrame, IBufferWriter<byte> output)
    {
        _encoded.Reset();
        _blockNeedsRewrite = false;
        _encodingSkipped = false;
        var decoded = _decoder.TryDecode(block, this);
        if (!decoded || (_encoded.Overflowed && (Rewriting || _blockNeedsRewrite)))
        {
            if (Rewriting)
            {
                throw new InvalidDataException("HTTP/2 header block could not be re-encoded after a rewrite; closing the connection.");
            }

            // Kestrel gets the original bytes and reports the error itself; once our HPACK
            // state is in doubt we stop parsing.
            ForwardRaw(rawFrame, output);
            PassingThrough |= !decoded;
        }
        else if (_blockNeedsRewrite || Rewriting)
        {
            Rewriting = true;
            WriteFrames(_encoded.WrittenSpan, output);
        }
        else
        {
            ForwardRaw(rawFrame, output);
        }

        EndBlock();
    }

    private void WriteFrames(ReadOnlySpan<byte> block, IBufferWriter<byte> output)
    {
        var priority = (_blockFlags & FlagPriority) != 0;
        var first = true;
        do
        {
            var prefixBytes = first && priority ? PrioritySizeBytes : 0;
            var chunk = block[..Math.Min(block.Length, _frameSizeBytesMax - prefixBytes)];
            block = block[chunk.Length..];
            var flags = first ? _blockFlags : (byte)0;
            if (block.IsEmpty)
            {
                flags |= FlagEndHeaders;
            }

            var payloadBytes = prefixBytes + chunk.Length;
            var span = output.GetSpan(FrameHeaderSizeBytes + payloadBytes);
            span[0] = (byte)(payloadBytes >> 16);
            span[1] = (byte)(payloadBytes >> 8);
            span[2] = (byte)payloadBytes;
            span[3] = first ? TypeHeaders : TypeContinuation;
            span[4] = flags;
            BinaryPrimitives.WriteInt32BigEndian(span[5..], _blockStreamId);
            if (prefixBytes > 0)
            {
                _priority.CopyTo(span[FrameHeaderSizeBytes..]);
            }

            chunk.CopyTo(span[(FrameHeaderSizeBytes + prefixBytes)..]);
            output.Advance(FrameHeaderSizeBytes + payloadBytes);
            first = false;
        }
        while (!block.IsEmpty);
    }

    private void ForwardRaw(in ReadOnlySequence<byte> rawFrame, IBufferWriter<byte> output)
    {
        if (rawFrame.IsEmpty)
        {
            output.Write(_rawFrames.WrittenSpan);
        }
        else
        {
            Copy(rawFrame, output);
        }
    }

    private void ForwardAndPassThrough(in ReadOnlySequence<byte> frame, IBufferWriter<byte> output)
    {
        ForwardBufferedBlockAndPassThrough(output);
        Copy(frame, output);
    }

    private void ForwardBufferedBlockAndPassThrough(IBufferWriter<byte> output)
    {
        output.Write(_rawFrames.WrittenSpan);
        EndBlock();
        PassingThrough = true;
    }

    private void EndBlock()
    {
        _inBlock = false;
        _rawFrames.Reset();
        _fragments.Reset();
        _encoded.Reset();
    }

    private static void Copy(in ReadOnlySequence<byte> bytes, IBufferWriter<byte> output)
    {
        foreach (var segment in bytes)
        {
            output.Write(segment.Span);
        }
    }
}
