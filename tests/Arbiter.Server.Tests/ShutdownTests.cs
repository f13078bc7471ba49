using System.Diagnostics;
using Arbiter.Protocol.Etcd;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Server.Tests;

/// <summary>Stopping the server ends open streams at once (etcd's "server stopped"), not after the host's timeout.</summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task OpenWatchAndKeepAliveStreamsDoNotHoldShutdown()
    {
        var backend = await Backend.StartAsync(overGrpc: true);
        await using var client = new Arbiter.Client.GrpcArbiterClient(backend.Endpoint!);
        await using var session = client.OpenWatch();
        await using var responses = session.ReadAllAsync().GetAsyncEnumerator();
        await session.CreateAsync(new WatchCreateRequest { Key = ByteString.CopyFromUtf8("s") });
        Assert.True(await responses.MoveNextAsync());
        var lease = await backend.Client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(backend.Endpoint!);
        var keepAlive = new Lease.LeaseClient(channel).LeaseKeepAlive();
        await keepAlive.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = lease.ID });
        Assert.True(await keepAlive.ResponseStream.MoveNext(CancellationToken.None));

        var stopwatch = Stopwatch.StartNew();
        await backend.DisposeAsync();
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"shutdown took {stopwatch.Elapsed}");

        // The stream ends with an error (Unavailable "server stopped", or Internal when the connection
        // closes before the trailers arrive) — never silently.
        var ended = await Assert.ThrowsAsync<RpcException>(async () => await responses.MoveNextAsync());
        Assert.Contains(ended.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });

    }
}
