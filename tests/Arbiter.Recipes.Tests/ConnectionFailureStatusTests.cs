using System.Net;
using System.Net.Sockets;
using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Recipes.Tests;

/// <summary>
/// grpc-dotnet reports some connections that never carried the call as Internal (an HTTP/2 handshake
/// that does not complete without a socket error, e.g. a TLS 1.3 server rejecting the client
/// certificate, or a peer that does not speak HTTP/2). The SDK reports every such failure as
/// Unavailable, as it does refused connections, so callers and its own retry see one code.
/// </summary>
public sealed class ConnectionFailureStatusTests
{
    [Fact]
    public async Task A_server_that_does_not_speak_http2_is_unavailable_and_idempotent_reads_retry()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = 0;
        using var stop = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var socket = await listener.AcceptSocketAsync(stop.Token);
                Interlocked.Increment(ref accepted);
                var preface = new byte[24];
                for (int got = 0, n; got < preface.Length; got += n)
                {
                    if ((n = await socket.ReceiveAsync(preface.AsMemory(got), stop.Token)) == 0)
                    {
                        break;
                    }
                }

                await socket.SendAsync("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"u8.ToArray(), stop.Token);
                socket.Shutdown(SocketShutdown.Both);
            }
        });

        var address = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        using (var channel = GrpcChannel.ForAddress(address))
        {
            // What grpc-dotnet itself says; if this ever becomes Unavailable, the SDK's mapping can go.
            var bare = await Assert.ThrowsAsync<RpcException>(() => new KV.KVClient(channel).PutAsync(new PutRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Internal, bare.StatusCode);
        }

        var options = new ArbiterClientOptions { RetryAttemptsMax = 0, CallTimeoutMs = 10_000 };
        options.Endpoints.Add(address);
        await using (var client = ArbiterClient.Connect(options))
        {
            var raw = await Assert.ThrowsAsync<RpcException>(() => client.Raw.PutAsync(new PutRequest(), default));
            Assert.Equal(StatusCode.Unavailable, raw.StatusCode);

            var put = await Assert.ThrowsAsync<RpcException>(() => client.PutAsync("k", "v"));
            Assert.Equal(StatusCode.Unavailable, put.StatusCode);
            // The cause is named. Its wording is grpc-dotnet's and varies with timing: usually about
            // the HTTP/2 handshake, but a clean-clone CI run at load 20 got one that did not say so.
            Assert.Contains(nameof(HttpRequestException), put.Status.Detail, StringComparison.Ordinal);
        }

        options.RetryAttemptsMax = 2;
        options.RetryDelayMs = 1;
        var before = Volatile.Read(ref accepted);
        await using (var client = ArbiterClient.Connect(options))
        {
            var get = await Assert.ThrowsAsync<RpcException>(() => client.GetAsync("k"));
            Assert.Equal(StatusCode.Unavailable, get.StatusCode);
        }

        // One connection per attempt: the first and both retries.
        Assert.Equal(3, Volatile.Read(ref accepted) - before);
        // The fake server ends either in its accept (cancelled) or between two connections.
        await stop.CancelAsync();
        try
        {
            await server;
        }
        catch (OperationCanceledException)
        {
        }
    }
}
