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
        var frames = new RawHttp2.FrameReader(socket);
        switch (exchange)
        {
            case Exchange.Http2WatchOpen:
                await socket.SendAsync(RawHttp2.Preface, timeout.Token);
                await socket.SendAsync(RawHttp2.Request(1, "/etcdserverpb.Watch/Watch", [0x0a, 0x03, 0x0a, 0x01, (byte)'w'], endStream: false), timeout.Token);
                await ReadUntilAsync(frames, f => f.Type == RawHttp2.Data && f.Stream == 1 && f.Payload.Length > 0, timeout.Token); // the "created" response
                break;
            case Exchange.Http2UnaryDone:
                await socket.SendAsync(RawHttp2.Preface, timeout.Token);
                await socket.SendAsync(RawHttp2.Request(1, "/etcdserverpb.KV/Range", [0x0a, 0x01, (byte)'r'], endStream: true), timeout.Token);
                await ReadUntilAsync(frames, f => f.Stream == 1 && f.Type is RawHttp2.Data or RawHttp2.Headers && (f.Flags & RawHttp2.FlagEndStream) != 0, timeout.Token); // headers, data, trailers
                break;
            case Exchange.Http11Health:
                await socket.SendAsync(Encoding.ASCII.GetBytes("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), timeout.Token);
                await ReadHttp11ResponseAsync(socket, timeout.Token);
                break;
        }

        socket.Shutdown(SocketShutdown.Send);
        var (fin, bytesAfter, error) = await ReadToEndAsync(socket, timeout.Token);
        output.WriteLine($"{target} {exchange}: {(fin ? "FIN" : $"error {error}")} after {bytesAfter} more byte(s)");
        Assert.True(fin, $"{target}: after the half-close the server's side ended with {error}, want a FIN (0-byte read)\n{(target == "arbiter" ? server.Log[^Math.Min(server.Log.Length, 4000)..] : string.Empty)}");
    }

    private static async Task ReadUntilAsync(RawHttp2.FrameReader frames, Func<(byte Type, byte Flags, int Stream, byte[] Payload), bool> wanted, CancellationToken cancellationToken)
    {
        while (!wanted(await frames.ReadFrameAsync(cancellationToken)))
        {
        }
    }

    /// <summary>Reads one whole HTTP/1.1 response (headers and a Content-Length body).</summary>
    private static async Task ReadHttp11ResponseAsync(Socket socket, CancellationToken cancellationToken)
    {
        var received = new List<byte>();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var text = Encoding.ASCII.GetString([.. received]);
            var headerEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (headerEnd >= 0)
            {
                var lengthLine = text[..headerEnd].Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                var length = lengthLine is null ? 0 : int.Parse(lengthLine["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                if (received.Count >= headerEnd + 4 + length)
                {
                    return;
                }
            }

            var read = await socket.ReceiveAsync(buffer, cancellationToken);
            if (read == 0)
            {
                throw new InvalidOperationException($"connection closed before the HTTP/1.1 response was complete: {text}");
            }

            received.AddRange(buffer.AsSpan(0, read).ToArray());
        }
    }

    /// <summary>Reads until the server's side ends: (true, n, null) on FIN, (false, n, error) on a reset.</summary>
    private static async Task<(bool Fin, int BytesAfter, string? Error)> ReadToEndAsync(Socket socket, CancellationToken cancellationToken)
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
}
