using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Arbiter.Server.Tests.Infrastructure;

namespace Arbiter.Server.Tests.Http2;

/// <summary>Raw HTTP/2 bytes against a real server: bad input ends one connection, never the server.</summary>
public sealed class MalformedHttp2ConnectionTests
{
    private const byte Headers = 0x1;
    private const byte Settings = 0x4;
    private const byte GoAway = 0x7;
    private const byte Continuation = 0x9;
    private const byte EndHeaders = 0x4;
    private const int NoError = 0x0;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    [Fact]
    public async Task BadHpackIsReportedByKestrelAndOversizedBlockAfterRewriteClosesTheConnection()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true);
        var uri = new Uri(backend.Endpoint!);

        // HPACK index 0 before any rewrite: forwarded as is, Kestrel answers with its own GOAWAY
        // (INTERNAL_ERROR in .NET 10, the same as without the middleware).
        byte[] badHpack = [.. Preface, .. Frame(Settings, 0, 0, []), .. Frame(Headers, EndHeaders, 1, [0x80])];
        var received = await ExchangeAsync(uri.Port, badHpack);
        Assert.Contains(ParseFrames(received), f => f.Type == GoAway && BinaryPrimitives.ReadInt32BigEndian(f.Payload.AsSpan(4)) != NoError);

        // A rewritten block, then a block over the 64 KiB bound: the connection is closed.
        var authority = Encoding.ASCII.GetBytes(backend.Endpoint!);
        byte[] rewritten = [0x83, 0x86, 0x44, 0x0f, .. "/etcdserverpb.X"u8, 0x41, (byte)authority.Length, .. authority];
        var chunk = new byte[16 * 1024];
        byte[] oversized =
        [
            .. Preface, .. Frame(Settings, 0, 0, []), .. Frame(Headers, EndHeaders, 1, rewritten),
            .. Frame(Headers, 0, 3, chunk), .. Frame(Continuation, 0, 3, chunk), .. Frame(Continuation, 0, 3, chunk),
            .. Frame(Continuation, 0, 3, chunk), .. Frame(Continuation, EndHeaders, 3, chunk),
        ];
        await ExchangeAsync(uri.Port, oversized);

        // The server still serves, through the rewrite.
        Assert.Contains(backend.Endpoint!, await EtcdctlHttpEndpointTests.RunAsync(backend.Endpoint!, "endpoint", "status"), StringComparison.Ordinal);
    }

    // Sends the bytes, then reads until the server closes the connection.
    private static async Task<byte[]> ExchangeAsync(int port, byte[] request)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port, deadline.Token);
        var stream = client.GetStream();
        using var received = new MemoryStream();
        try
        {
            await stream.WriteAsync(request, deadline.Token);
            await stream.CopyToAsync(received, deadline.Token);
        }
        catch (IOException)
        {
            // A reset instead of a clean close is fine too.
        }

        Assert.False(deadline.IsCancellationRequested, "the server did not close the connection in time");
        return received.ToArray();
    }

    private static byte[] Frame(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload) =>
        Http2AuthorityRewriterTests.Frame(type, flags, streamId, payload);

    private static List<(byte Type, byte[] Payload)> ParseFrames(byte[] bytes)
    {
        var frames = new List<(byte, byte[])>();
        var span = bytes.AsSpan();
        while (span.Length >= 9)
        {
            var length = (span[0] << 16) | (span[1] << 8) | span[2];
            if (span.Length < 9 + length)
            {
                break;
            }

            frames.Add((span[3], span[9..(9 + length)].ToArray()));
            span = span[(9 + length)..];
        }

        return frames;
    }
}
