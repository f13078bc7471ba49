using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Lock;
using Google.Protobuf;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>lock-service</c>: v3lockpb Lock then Unlock of a random lock name among <c>--key-space</c>
/// (few names = contention), each client holding one lease for the whole run.
/// </summary>
public sealed class LockServiceWorkload : Workload
{
    /// <inheritdoc />
    public override string Name => "lock-service";

    /// <inheritdoc />
    public override async Task SetupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        client.State = await GrantSessionLeaseAsync(context, client, cancellationToken);
    }

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var name = Key(context.KeyPrefix, client.Random.Next(context.Options.KeySpace));
        var locked = await client.Lock.LockAsync(new LockRequest { Name = name, Lease = (long)client.State! }, client.Call(cancellationToken));
        await client.Lock.UnlockAsync(new UnlockRequest { Key = locked.Key }, client.Call(cancellationToken));
    }

    /// <inheritdoc />
    public override Task CleanupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken) =>
        RevokeSessionLeaseAsync(client, cancellationToken);

    /// <summary>Grants a lease that outlives the run (no keep-alive needed).</summary>
    internal static async Task<long> GrantSessionLeaseAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var ttlS = (long)Math.Ceiling(context.Options.DurationS + context.Options.WarmupS) + 120;
        var lease = await client.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttlS }, client.Call(cancellationToken));
        return lease.ID;
    }

    /// <summary>Revokes the client's session lease; its keys go with it.</summary>
    internal static async Task RevokeSessionLeaseAsync(BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (client.State is long leaseId)
        {
            try
            {
                await client.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, client.Call(cancellationToken));
            }
            catch (Grpc.Core.RpcException)
            {
                // Best effort: the lease expires on its own.
            }
        }
    }

    /// <summary>UTF-8 bytes of <paramref name="text"/>.</summary>
    internal static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);
}
