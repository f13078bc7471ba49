using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>Real etcd 3.4 and Arbiter, plain client ports, for raw-socket connection tests.</summary>
public sealed class PlainServersFixture : IAsyncLifetime
{
    public EtcdProcess Etcd { get; } = new("etcd-halfclose");

    public ArbiterProcess Arbiter { get; } = new("arbiter-halfclose");

    public async Task InitializeAsync() => await Task.WhenAll(Etcd.StartAsync(), Arbiter.StartAsync());

    public async Task DisposeAsync()
    {
        await Etcd.DisposeAsync();
        await Arbiter.DisposeAsync();
    }

    public ServerProcess For(string target) => target == "etcd" ? Etcd : Arbiter;
}

/// <summary>
/// Issue #17 item 5: a client that half-closes its connection (shutdown(SHUT_WR)) after a complete
/// exchange must see the server close with a FIN (a read of 0 bytes), never a reset. Each case runs
/// against real etcd 3.4 too, to show that this is etcd's behaviour. Before the fix, Arbiter reset
/// the connection whenever a stream (a watch) was still open.
/// </summary>
public sealed class HalfCloseTests(PlainServersFixture servers, ITestOutputHelper output) : IClassFixture<PlainServersFixture>
{
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(20);

    public enum Exchange
    {
        /// <summary>HTTP/2: a Watch stream created (response read) and left open.</summary>
        Http2WatchOpen,

        /// <summary>HTTP/2: a unary Range, answered completely.</summary>
        Http2UnaryDone,

        /// <summary>HTTP/1.1: GET /health, answered completely.</summary>
        Http11Health,
    }

    [Theory]
    [InlineData("etcd", Exchange.Http2WatchOpen)]
    [InlineData("arbiter", Exchange.Http2WatchOpen)]
    [InlineData("etcd", Exchange.Http2UnaryDone)]
    [InlineData("arbiter", Exchange.Http2UnaryDone)]
    [InlineData("etcd", Exchange.Http11Health)]
    [InlineData("arbiter", Exchange.Http11Health)]
    public async Task HalfCloseAfterACompleteExchangeEndsWithAFin(string target, Exchange exchange)
    {
        var server = servers.For(target);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(ReadTimeout);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.ClientPort), timeout.Token);
        var reader = new Reader(socket);
        switch (exchange)
        {
            case Exchange.Http2WatchOpen:
                await socket.SendAsync(Http2.Preface, timeout.Token);
                await socket.SendAsync(Http2.Request(1, "/etcdserverpb.Watch/Watch", [0x0a, 0x03, 0x0a, 0x01, (byte)'w'], endStream: false), timeout.Token);
                await reader.ReadHttp2UntilDataOnStreamAsync(1, timeout.Token); // the "created" response
                break;
            case Exchange.Http2UnaryDone:
                await socket.SendAsync(Http2.Preface, timeout.Token);
                await socket.SendAsync(Http2.Request(1, "/etcdserverpb.KV/Range", [0x0a, 0x01, (byte)'r'], endStream: true), timeout.Token);
                await reader.ReadHttp2UntilEndOfStreamAsync(1, timeout.Token); // headers, data, trailers
                break;
            case Exchange.Http11Health:
                await socket.SendAsync(Encoding.ASCII.GetBytes("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), timeout.Token);
                await reader.ReadHttp11ResponseAsync(timeout.Token);
                break;
        }

        socket.Shutdown(SocketShutdown.Send);
        var (fin, bytesAfter, error) = await reader.ReadToEndAsync(timeout.Token);
        output.WriteLine($"{target} {exchange}: {(fin ? "FIN" : $"error {error}")} after {bytesAfter} more byte(s)");
        Assert.True(fin, $"{target}: after the half-close the server's side ended with {error}, want a FIN (0-byte read)\n{(target == "arbiter" ? server.Log[^Math.Min(server.Log.Length, 4000)..] : string.Empty)}");
    }

    /// <summary>Reads the raw socket, keeping what it has not parsed yet.</summary>
    private sealed class Reader(Socket socket)
    {
        private readonly List<byte> _pending = [];

        public async Task ReadHttp2UntilDataOnStreamAsync(int streamId, CancellationToken cancellationToken)
        {
            while (true)
            {
                var (type, flags, stream, payload) = await ReadFrameAsync(cancellationToken);
                if (type == 0 && stream == streamId && payload.Length > 0)
                {
                    return;
                }

                await AnswerAsync(type, flags, cancellationToken);
            }
        }

        public async Task ReadHttp2UntilEndOfStreamAsync(int streamId, CancellationToken cancellationToken)
        {
            while (true)
            {
                var (type, flags, stream, _) = await ReadFrameAsync(cancellationToken);
                if (stream == streamId && (type is 0 or 1) && (flags & 0x1) != 0)
                {
                    return;
                }

                await AnswerAsync(type, flags, cancellationToken);
            }
        }

        public async Task ReadHttp11ResponseAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                var text = Encoding.ASCII.GetString([.. _pending]);
                var headerEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (headerEnd >= 0)
                {
                    var lengthLine = text[..headerEnd].Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                    var length = lengthLine is null ? 0 : int.Parse(lengthLine["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    if (_pending.Count >= headerEnd + 4 + length)
                    {
                        return;
                    }
                }

                if (await FillAsync(cancellationToken) == 0)
                {
                    throw new InvalidOperationException($"connection closed before the HTTP/1.1 response was complete: {text}");
                }
            }
        }

        /// <summary>Reads until the server's side ends: (true, n, null) on FIN, (false, n, error) on a reset.</summary>
        public async Task<(bool Fin, int BytesAfter, string? Error)> ReadToEndAsync(CancellationToken cancellationToken)
        {
            var total = 0;
            var buffer = new byte[16 * 1024];
            try
            {
                while (true)
                {
                    var read = await socket.ReceiveAsync(buffer, cancellationToken);
                    if (read == 0)
                    {
                        return (true, total, null);
                    }

                    total += read;
                }
            }
            catch (SocketException e)
            {
                return (false, total, $"SocketException {e.SocketErrorCode}");
            }
        }

        private async Task AnswerAsync(byte type, byte flags, CancellationToken cancellationToken)
        {
            // Acknowledge the server's SETTINGS, as a client must.
            if (type == 4 && (flags & 0x1) == 0)
            {
                await socket.SendAsync(Http2.Frame(4, 0x1, 0, []), cancellationToken);
            }
        }

        private async Task<(byte Type, byte Flags, int Stream, byte[] Payload)> ReadFrameAsync(CancellationToken cancellationToken)
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
                        return (type, flags, stream, payload);
                    }
                }

                if (await FillAsync(cancellationToken) == 0)
                {
                    throw new InvalidOperationException("connection closed before the expected HTTP/2 frames");
                }
            }
        }

        private async Task<int> FillAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[16 * 1024];
            var read = await socket.ReceiveAsync(buffer, cancellationToken);
            _pending.AddRange(buffer.AsSpan(0, read).ToArray());
            return read;
        }
    }

    /// <summary>Just enough HTTP/2 to send one gRPC call (HPACK literals, no Huffman).</summary>
    private static class Http2
    {
        public static byte[] Preface => [.. "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8, .. Frame(4, 0, 0, [])];

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

        public static byte[] Request(int stream, string path, byte[] message, bool endStream)
        {
            var headers = new List<byte> { 0x83, 0x86 }; // :method POST, :scheme http
            headers.AddRange(IndexedName(4, path)); // :path
            headers.AddRange(IndexedName(1, "127.0.0.1")); // :authority
            headers.AddRange(NewName("content-type", "application/grpc"));
            headers.AddRange(NewName("te", "trailers"));
            var data = new byte[5 + message.Length];
            BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(1), message.Length);
            message.CopyTo(data, 5);
            return [.. Frame(1, 0x4, stream, [.. headers]), .. Frame(0, endStream ? (byte)0x1 : (byte)0, stream, data)];
        }

        private static byte[] IndexedName(byte index, string value) => [index, (byte)value.Length, .. Encoding.ASCII.GetBytes(value)];

        private static byte[] NewName(string name, string value) => [0x00, (byte)name.Length, .. Encoding.ASCII.GetBytes(name), (byte)value.Length, .. Encoding.ASCII.GetBytes(value)];
    }
}
