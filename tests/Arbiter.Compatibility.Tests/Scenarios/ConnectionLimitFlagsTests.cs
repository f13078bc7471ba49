using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// Two <c>arbiter serve</c> processes with short connection limits: one for the header size, header
/// timeout and idle timeout, one for the keep-alive pings (kept apart so that neither limit closes
/// a connection meant to test the other).
/// </summary>
public sealed class ConnectionLimitServersFixture : IAsyncLifetime
{
    public const int RequestHeaderBytesMax = 4096;
    public const int RequestHeaderTimeoutMs = 2000;
    public const int IdleConnectionTimeoutMs = 3000;
    public const int KeepAlivePingIntervalMs = 2000;
    public const int KeepAlivePingTimeoutMs = 2000;

    /// <summary>Header size, header timeout and idle timeout; keep-alive pings at their default (2h).</summary>
    public ArbiterProcess Limits { get; } = new("arbiter-connection-limits", [
        "--in-memory",
        "--max-request-header-bytes", $"{RequestHeaderBytesMax}",
        "--request-header-timeout", $"{RequestHeaderTimeoutMs}ms",
        "--idle-connection-timeout", $"{IdleConnectionTimeoutMs}ms",
    ]);

    /// <summary>Keep-alive pings; the idle timeout at its default (130s).</summary>
    public ArbiterProcess KeepAlive { get; } = new("arbiter-keepalive", [
        "--in-memory",
        "--grpc-keepalive-interval", $"{KeepAlivePingIntervalMs}ms",
        "--grpc-keepalive-timeout", $"{KeepAlivePingTimeoutMs}ms",
    ]);

    public async Task InitializeAsync() => await Task.WhenAll(Limits.StartAsync(), KeepAlive.StartAsync());

    public async Task DisposeAsync()
    {
        await Limits.DisposeAsync();
        await KeepAlive.DisposeAsync();
    }
}

/// <summary>
/// Issue #17 item 6, the connection-limit flags beyond those of <see cref="EdgeLimitsTests"/>, each
/// on a real <c>arbiter serve</c> with raw sockets: <c>--max-request-header-bytes</c> refuses a
/// header block over it and serves one under it on the same server; <c>--request-header-timeout</c>
/// cuts a client that sends half a header block and stalls while a normal client is served;
/// <c>--idle-connection-timeout</c> closes a connection with nothing open but not one with a watch
/// open; <c>--grpc-keepalive-interval</c>/<c>--grpc-keepalive-timeout</c> PING a silent connection at
/// the interval and close it when the PING goes unanswered, while a client that answers stays.
/// Timeouts are seconds; deadlines are tens of seconds (load 30 on this machine).
/// </summary>
public sealed class ConnectionLimitFlagsTests(ConnectionLimitServersFixture servers, ITestOutputHelper output) : IClassFixture<ConnectionLimitServersFixture>
{
    private static readonly TimeSpan CallDeadline = TimeSpan.FromSeconds(10);

    /// <summary>Longest to wait for the server to close a connection it should close (without the limit it never would).</summary>
    private static readonly TimeSpan CloseDeadline = TimeSpan.FromSeconds(30);

    private static readonly byte[] RangeRequest = new RangeRequest { Key = ByteString.CopyFromUtf8("limits/k") }.ToByteArray();

    [Fact]
    public async Task AHeaderBlockOverTheLimitIsRefusedAndOneUnderItIsServed()
    {
        var port = servers.Limits.ClientPort;

        // HTTP/2 (gRPC): one header of 3 KiB fits in 4 KiB; one of 5 KiB does not.
        var under = await Http2CallAsync(port, new string('u', 3 * 1024));
        output.WriteLine($"HTTP/2, a 3 KiB header: {under}");
        Assert.Equal("answered", under);
        var over = await Http2CallAsync(port, new string('o', 5 * 1024));
        output.WriteLine($"HTTP/2, a 5 KiB header: {over}");
        Assert.NotEqual("answered", over);
        Assert.Equal("answered", await Http2CallAsync(port, new string('a', 3 * 1024)));

        // HTTP/1.1 (/health): 431 over the limit, 200 under it.
        using var http = new HttpClient { Timeout = CallDeadline };
        foreach (var (size, expected) in new[] { (3 * 1024, HttpStatusCode.OK), (5 * 1024, HttpStatusCode.RequestHeaderFieldsTooLarge) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, servers.Limits.Endpoint + "/health");
            request.Headers.Add("X-Padding", new string('h', size));
            using var response = await http.SendAsync(request);
            output.WriteLine($"HTTP/1.1, a {size / 1024} KiB header: {(int)response.StatusCode}");
            Assert.Equal(expected, response.StatusCode);
        }
    }

    [Fact]
    public async Task AClientThatStallsHalfwayThroughItsHeadersIsCutWhileANormalClientIsServed()
    {
        var port = servers.Limits.ClientPort;
        var http2Block = RawHttp2.RequestHeaders(1, "/etcdserverpb.KV/Range");
        var http11Headers = Encoding.ASCII.GetBytes("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\n");
        var stalled = new List<Task<TimeSpan?>>();
        for (var i = 0; i < 5; i++)
        {
            // The preface and SETTINGS, then half of a HEADERS frame; and HTTP/1.1 headers without their end.
            stalled.Add(SendThenWaitClosedAsync(port, [.. RawHttp2.Preface, .. http2Block.AsSpan(0, http2Block.Length / 2)]));
            stalled.Add(SendThenWaitClosedAsync(port, http11Headers));
        }

        var served = await KeepServingUntilAsync(servers.Limits, Task.WhenAll(stalled));
        var closed = await Task.WhenAll(stalled);
        output.WriteLine($"stalled sockets closed after {string.Join(", ", closed.Select(t => t is null ? "never" : $"{t.Value.TotalSeconds:F1}s"))}; meanwhile {served} put+range pairs served");
        Assert.All(closed, t => Assert.NotNull(t));
        Assert.All(closed, t => Assert.True(t!.Value >= TimeSpan.FromMilliseconds(ConnectionLimitServersFixture.RequestHeaderTimeoutMs * 0.9), $"closed after {t.Value}, before the timeout"));
    }

    [Fact]
    public async Task AnIdleConnectionIsClosedAndOneWithAWatchOpenIsNot()
    {
        var server = servers.Limits;
        using var timeout = new CancellationTokenSource(CloseDeadline * 2);

        // A gRPC client with a watch open: no request, no response for several idle timeouts.
        using var channel = GrpcChannel.ForAddress(server.Endpoint);
        await using var watch = new WatchStream(channel);
        await watch.CreateAsync(new WatchCreateRequest { Key = ByteString.CopyFromUtf8("idle/k") });
        Assert.True((await watch.ReadAsync(CallDeadline)).Created);

        // A raw connection that made one call and then has nothing open.
        using var idle = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await idle.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.ClientPort), timeout.Token);
        var frames = new RawHttp2.FrameReader(idle) { AnswerPings = true };
        byte[] call = [.. RawHttp2.Preface, .. RawHttp2.Request(1, "/etcdserverpb.KV/Range", RangeRequest, endStream: true)];

        // Timed from before the call is sent: the server's idle clock cannot start earlier (it starts
        // when the call ends there), while one started after reading the answer may start late.
        var sinceLastCall = Stopwatch.StartNew();
        await idle.SendAsync(call, timeout.Token);
        while (await frames.ReadFrameAsync(timeout.Token) is var frame && !(frame.Stream == 1 && (frame.Flags & RawHttp2.FlagEndStream) != 0))
        {
        }

        var closedAfter = await WaitClosedAsync(frames, CloseDeadline, timeout.Token);
        output.WriteLine($"idle connection closed {closedAfter?.TotalSeconds:F1}s after its call ended (--idle-connection-timeout {ConnectionLimitServersFixture.IdleConnectionTimeoutMs}ms)");
        Assert.NotNull(closedAfter);
        Assert.True(sinceLastCall.Elapsed >= TimeSpan.FromMilliseconds(ConnectionLimitServersFixture.IdleConnectionTimeoutMs * 0.9), $"closed after {sinceLastCall.Elapsed}, before the idle timeout");

        // By now the watch's connection has been quiet for longer than the idle timeout, and more.
        while (sinceLastCall.Elapsed < TimeSpan.FromMilliseconds(ConnectionLimitServersFixture.IdleConnectionTimeoutMs * 3))
        {
            await Task.Delay(250, timeout.Token);
        }

        // Its stream is still there: an event reaches it on the same call (a closed connection would fail the read).
        using var other = GrpcChannel.ForAddress(server.Endpoint);
        await new KV.KVClient(other).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("idle/k"), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow + CallDeadline);
        var events = await watch.ReadAsync(CallDeadline);
        output.WriteLine($"the watch, quiet for {sinceLastCall.Elapsed.TotalSeconds:F1}s, received: {events}");
        Assert.Equal("idle/k", Assert.Single(events.Events).Kv.Key.ToStringUtf8());
    }

    [Fact]
    public async Task ASilentConnectionIsPingedAndClosedWhenThePingGoesUnansweredWhileOneThatAnswersStays()
    {
        var server = servers.KeepAlive;
        using var timeout = new CancellationTokenSource(CloseDeadline * 3);
        var interval = TimeSpan.FromMilliseconds(ConnectionLimitServersFixture.KeepAlivePingIntervalMs);
        var pingTimeout = TimeSpan.FromMilliseconds(ConnectionLimitServersFixture.KeepAlivePingTimeoutMs);

        // Both open a watch (so the connection is in use) and then send nothing; one answers PINGs.
        var (silent, silentFrames) = await OpenWatchAsync(server.ClientPort, answerPings: false, timeout.Token);
        var (live, liveFrames) = await OpenWatchAsync(server.ClientPort, answerPings: true, timeout.Token);
        using var silentSocket = silent;
        using var liveSocket = live;

        // The live one is read all along (reading is what answers its PINGs).
        var quiet = Stopwatch.StartNew();
        using var stopLive = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var liveState = new LiveConnection();
        var liveReader = ReadLiveAsync(liveFrames, liveState, quiet, stopLive.Token);

        // The silent one: a PING after the interval, then closed after the timeout.
        TimeSpan? pingedAfter = null;
        TimeSpan? closedAfter = null;
        using (var silentDeadline = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token))
        {
            silentDeadline.CancelAfter(CloseDeadline);
            try
            {
                while (await silentFrames.TryReadFrameAsync(silentDeadline.Token) is { } frame)
                {
                    if (frame.Type == RawHttp2.Ping && (frame.Flags & RawHttp2.FlagAck) == 0)
                    {
                        pingedAfter ??= quiet.Elapsed;
                    }
                }

                closedAfter = quiet.Elapsed;
            }
            catch (OperationCanceledException)
            {
                // Still open at the deadline: the assertions below say what was missing.
            }
        }

        output.WriteLine($"silent connection: PING after {pingedAfter?.TotalSeconds:F1}s, closed after {closedAfter?.TotalSeconds:F1}s (interval {interval.TotalSeconds}s, timeout {pingTimeout.TotalSeconds}s)");
        Assert.True(pingedAfter is not null, $"no PING within {CloseDeadline}");
        Assert.True(closedAfter is not null, $"the connection that did not answer the PING was still open after {CloseDeadline}");
        Assert.True(pingedAfter >= interval * 0.9, $"pinged after {pingedAfter}, before the interval");
        Assert.True(closedAfter - pingedAfter >= pingTimeout * 0.9, $"closed {closedAfter - pingedAfter} after the PING, before the timeout");

        // The live one: pinged at least twice (it answered each), and its watch still works.
        using var channel = GrpcChannel.ForAddress(server.Endpoint);
        await new KV.KVClient(channel).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("keepalive/k"), Value = ByteString.CopyFromUtf8("v") }, deadline: DateTime.UtcNow + CallDeadline);
        while (!liveReader.IsCompleted && !(liveState.EventReceived && liveState.Pings >= 2) && quiet.Elapsed < CloseDeadline * 2)
        {
            await Task.Delay(100, timeout.Token);
        }

        await stopLive.CancelAsync();
        await liveReader;
        output.WriteLine($"live connection: {liveState.Pings} PINGs answered, watch event {(liveState.EventReceived ? "received" : "missing")}, {liveState.Ended ?? "open"} after {quiet.Elapsed.TotalSeconds:F1}s");
        Assert.Null(liveState.Ended);
        Assert.True(liveState.Pings >= 2, $"{liveState.Pings} PINGs");
        Assert.True(liveState.EventReceived, "the live connection's watch received no event");
        Assert.True(quiet.Elapsed > closedAfter, "the live connection was not kept past the silent one's close");
    }

    /// <summary>Reads a connection that answers PINGs until <paramref name="cancellationToken"/>, noting what it saw.</summary>
    private static async Task ReadLiveAsync(RawHttp2.FrameReader frames, LiveConnection state, Stopwatch clock, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var frame = await frames.TryReadFrameAsync(cancellationToken);
                switch (frame)
                {
                    case null:
                        state.Ended = $"closed after {clock.Elapsed}";
                        return;
                    case { Type: RawHttp2.GoAway }:
                        state.Ended = $"GOAWAY after {clock.Elapsed}";
                        return;
                    case { Type: RawHttp2.Ping } when (frame.Value.Flags & RawHttp2.FlagAck) == 0:
                        state.Pings++;
                        break;
                    case { Type: RawHttp2.Data, Stream: 1 }:
                        state.EventReceived = true;
                        break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Done looking.
        }
    }

    /// <summary>What the reader of the connection that answers PINGs saw.</summary>
    private sealed class LiveConnection
    {
        public int Pings { get; set; }

        public bool EventReceived { get; set; }

        public string? Ended { get; set; }
    }

    /// <summary>One gRPC Range on a fresh connection with an extra header of <paramref name="padding"/>: "answered", or how the server refused it.</summary>
    private static async Task<string> Http2CallAsync(int port, string padding)
    {
        using var timeout = new CancellationTokenSource(CloseDeadline);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        var frames = new RawHttp2.FrameReader(socket);
        byte[] call = [.. RawHttp2.Preface, .. RawHttp2.RequestHeaders(1, "/etcdserverpb.KV/Range", ("x-padding", padding)), .. RawHttp2.Message(1, RangeRequest, endStream: true)];
        await socket.SendAsync(call, timeout.Token);
        while (true)
        {
            var frame = await frames.TryReadFrameAsync(timeout.Token);
            switch (frame)
            {
                case null:
                    return "connection closed";
                case { Type: RawHttp2.GoAway }:
                    return $"GOAWAY, error code {System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(frame.Value.Payload.AsSpan(4))}";
                case { Type: RawHttp2.RstStream, Stream: 1 }:
                    return $"RST_STREAM, error code {System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(frame.Value.Payload)}";
                case { Type: RawHttp2.Data, Stream: 1 } when frame.Value.Payload.Length > 0:
                    return "answered";
            }
        }
    }

    /// <summary>A raw HTTP/2 connection with a Watch call open on stream 1, its "created" response read.</summary>
    private static async Task<(Socket Socket, RawHttp2.FrameReader Frames)> OpenWatchAsync(int port, bool answerPings, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        var frames = new RawHttp2.FrameReader(socket) { AnswerPings = answerPings };
        var watch = new WatchRequest { CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFromUtf8("keepalive/k") } }.ToByteArray();
        byte[] call = [.. RawHttp2.Preface, .. RawHttp2.Request(1, "/etcdserverpb.Watch/Watch", watch, endStream: false)];
        await socket.SendAsync(call, cancellationToken);
        while (await frames.ReadFrameAsync(cancellationToken) is var frame && !(frame.Type == RawHttp2.Data && frame.Stream == 1))
        {
        }

        return (socket, frames);
    }

    /// <summary>Puts and ranges with a normal client, each within its deadline, until <paramref name="until"/> ends (at least 10 pairs); how many.</summary>
    private static async Task<int> KeepServingUntilAsync(ArbiterProcess server, Task until)
    {
        using var channel = GrpcChannel.ForAddress(server.Endpoint);
        var kv = new KV.KVClient(channel);
        var started = Stopwatch.StartNew();
        var calls = 0;
        while ((!until.IsCompleted && started.Elapsed < CloseDeadline) || calls < 10)
        {
            var key = ByteString.CopyFromUtf8($"stall/{calls}");
            await kv.PutAsync(new PutRequest { Key = key, Value = key }, deadline: DateTime.UtcNow + CallDeadline);
            Assert.Equal(key, Assert.Single((await kv.RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow + CallDeadline)).Kvs).Value);
            calls++;
        }

        return calls;
    }

    /// <summary>Connects, sends <paramref name="bytes"/> at once and nothing more; how long until the server closed it, or null if it did not within the deadline.</summary>
    private static async Task<TimeSpan?> SendThenWaitClosedAsync(int port, byte[] bytes)
    {
        using var timeout = new CancellationTokenSource(CloseDeadline);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        // Timed from before the connect: the server's timeout cannot start earlier, while a clock
        // started after ConnectAsync returned starts late on a busy thread pool.
        var sent = Stopwatch.StartNew();
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        await socket.SendAsync(bytes, timeout.Token);

        // Raw reads, never a reply (not even a SETTINGS ack): the client stays stalled mid-request.
        var buffer = new byte[4096];
        try
        {
            while (await socket.ReceiveAsync(buffer, timeout.Token) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // A reset is a close too.
        }
        catch (OperationCanceledException)
        {
            return null;
        }

        return sent.Elapsed;
    }

    /// <summary>Reads (and drops) frames until the server ends the connection; the time that took, or null at the deadline.</summary>
    private static async Task<TimeSpan?> WaitClosedAsync(RawHttp2.FrameReader frames, TimeSpan deadline, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(deadline);
        try
        {
            while (await frames.TryReadFrameAsync(limit.Token) is not null)
            {
            }

            return waited.Elapsed;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }
}
