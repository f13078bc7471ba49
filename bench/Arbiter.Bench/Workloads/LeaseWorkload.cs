using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>lease</c>: LeaseGrant, one keep-alive round trip on the client's long-lived LeaseKeepAlive
/// stream, then LeaseRevoke (so the server's lease count stays flat). One operation = all three.
/// </summary>
public sealed class LeaseWorkload : Workload
{
    private const long LeaseTtlS = 60;

    /// <inheritdoc />
    public override string Name => "lease";

    /// <inheritdoc />
    public override Task SetupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        client.State = client.Lease.LeaseKeepAlive(cancellationToken: cancellationToken);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var keepAlive = (AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse>)client.State!;
        var lease = await client.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = LeaseTtlS }, client.Call(cancellationToken));
        await keepAlive.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = lease.ID }, cancellationToken);
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(context.Options.RequestTimeoutMs);
            if (!await keepAlive.ResponseStream.MoveNext(timeout.Token))
            {
                throw new RpcException(new Status(StatusCode.Unavailable, "keep-alive stream ended"));
            }
        }

        if (keepAlive.ResponseStream.Current.TTL <= 0)
        {
            throw new RpcException(new Status(StatusCode.NotFound, "keep-alive found no lease"));
        }

        await client.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease.ID }, client.Call(cancellationToken));
    }

    /// <inheritdoc />
    public override async Task CleanupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (client.State is AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse> keepAlive)
        {
            try
            {
                await keepAlive.RequestStream.CompleteAsync();
            }
            catch (RpcException)
            {
                // The stream may already be broken; disposing below is what matters.
            }
            catch (InvalidOperationException)
            {
                // Completed already.
            }

            keepAlive.Dispose();
        }
    }
}
