using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>Just enough HTTP/2 over a raw socket to open gRPC calls and read frames (HPACK literals, no Huffman), for the edge and connection tests.</summary>
public static class RawHttp2
{
    public const byte Data = 0x0;
    public const byte Headers = 0x1;
    public const byte RstStream = 0x3;
    public const byte Settings = 0x4;
    public const byte Ping = 0x6;
    public const byte GoAway = 0x7;
    public const byte FlagEndStream = 0x1;
    public const byte FlagAck = 0x1;
    public const byte FlagEndHeaders = 0x4;
    public const ushort SettingsMaxConcurrentStreams = 0x3;
    public const int RefusedStream = 0x7;

    /// <summary>The connection preface and an empty SETTINGS frame.</summary>
    public static byte[] Preface => [.. "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8, .. Frame(Settings, 0, 0, [])];

    public static byte[] Frame(byte type, byte flags, int stream, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), stream);
        payload.CopyTo(frame, 9);
        return frame;
    }

    /// <summary>A HEADERS frame opening a gRPC call on <paramref name="stream"/>, with <paramref name="extraHeaders"/> after gRPC's own.</summary>
    public static byte[] RequestHeaders(int stream, string path, params (string Name, string Value)[] extraHeaders) =>
        Frame(Headers, FlagEndHeaders, stream, HeaderBlock(path, extraHeaders));

    /// <summary>The HPACK header block of a gRPC request (literals without indexing, no Huffman).</summary>
    private static byte[] HeaderBlock(string path, params (string Name, string Value)[] extraHeaders)
    {
        var headers = new List<byte> { 0x83, 0x86 }; // :method POST, :scheme http
        headers.AddRange(IndexedName(4, path)); // :path
        headers.AddRange(IndexedName(1, "127.0.0.1")); // :authority
        headers.AddRange(NewName("content-type", "application/grpc"));
        headers.AddRange(NewName("te", "trailers"));
        foreach (var (name, value) in extraHeaders)
        {
            headers.AddRange(NewName(name, value));
        }

        return [.. headers];
    }

    /// <summary>A PING frame (the reply to one when <paramref name="ack"/>), with its 8-byte payload.</summary>
    public static byte[] PingFrame(byte[] payload, bool ack) => Frame(Ping, ack ? FlagAck : (byte)0, 0, payload);

    /// <summary>A DATA frame carrying one gRPC message.</summary>
    public static byte[] Message(int stream, byte[] message, bool endStream)
    {
        var data = new byte[5 + message.Length];
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(1), message.Length);
        message.CopyTo(data, 5);
        return Frame(Data, endStream ? FlagEndStream : (byte)0, stream, data);
    }

    /// <summary>HEADERS and one message: a whole gRPC call's request side (open when not <paramref name="endStream"/>).</summary>
    public static byte[] Request(int stream, string path, byte[] message, bool endStream) =>
        [.. RequestHeaders(stream, path), .. Message(stream, message, endStream)];

    // Literal header fields without indexing (RFC 7541 6.2.2): an indexed name (4-bit prefix) or a new one.
    private static byte[] IndexedName(byte index, string value) => [index, .. StringLiteral(value)];

    private static byte[] NewName(string name, string value) => [0x00, .. StringLiteral(name), .. StringLiteral(value)];

    // A string literal without Huffman: its length as an HPACK integer with a 7-bit prefix (RFC 7541 5.1), then the bytes.
    private static byte[] StringLiteral(string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var encoded = new List<byte>();
        if (bytes.Length < 0x7f)
        {
            encoded.Add((byte)bytes.Length);
        }
        else
        {
            encoded.Add(0x7f);
            var rest = bytes.Length - 0x7f;
            while (rest >= 0x80)
            {
                encoded.Add((byte)((rest & 0x7f) | 0x80));
                rest >>= 7;
            }

            encoded.Add((byte)rest);
        }

        encoded.AddRange(bytes);
        return [.. encoded];
    }

    /// <summary>
    /// Reads frames from a raw socket, keeping what it has not parsed yet; acknowledges the server's
    /// SETTINGS, and its PINGs when <see cref="AnswerPings"/> (as a live client does).
    /// </summary>
    public sealed class FrameReader(Socket socket)
    {
        private readonly List<byte> _pending = [];

        /// <summary>Answer the server's PINGs (off: a client that has stopped responding).</summary>
        public bool AnswerPings { get; init; }

        /// <summary>The next frame; throws when the connection ends first.</summary>
        public async Task<(byte Type, byte Flags, int Stream, byte[] Payload)> ReadFrameAsync(CancellationToken cancellationToken) =>
            await TryReadFrameAsync(cancellationToken) ?? throw new InvalidOperationException("connection closed before the expected HTTP/2 frames");

        /// <summary>The next frame, or null when the server ends the connection first (FIN or reset).</summary>
        public async Task<(byte Type, byte Flags, int Stream, byte[] Payload)?> TryReadFrameAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                if (_pending.Count >= 9)
                {
                    var length = (_pending[0] << 16) | (_pending[1] << 8) | _pending[2];
                    if (_pending.Count >= 9 + length)
                    {
                        var type = _pending[3];
                        var flags = _pending[4];
                        var stream = BinaryPrimitives.ReadInt32BigEndian([.. _pending.GetRange(5, 4)]) & 0x7fffffff;
                        var payload = _pending.GetRange(9, length).ToArray();
                        _pending.RemoveRange(0, 9 + length);
                        if (type == Settings && (flags & FlagAck) == 0)
                        {
                            await socket.SendAsync(Frame(Settings, FlagAck, 0, []), cancellationToken);
                        }
                        else if (type == Ping && (flags & FlagAck) == 0 && AnswerPings)
                        {
                            await socket.SendAsync(PingFrame(payload, ack: true), cancellationToken);
                        }

                        return (type, flags, stream, payload);
                    }
                }

                var buffer = new byte[16 * 1024];
                int read;
                try
                {
                    read = await socket.ReceiveAsync(buffer, cancellationToken);
                }
                catch (SocketException)
                {
                    return null;
                }

                if (read == 0)
                {
                    return null;
                }

                _pending.AddRange(buffer.AsSpan(0, read).ToArray());
            }
        }
    }
}
