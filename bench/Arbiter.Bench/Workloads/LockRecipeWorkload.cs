using System.Globalization;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>lock-recipe</c>: etcd's client-side mutex (clientv3/concurrency.Mutex) over KV, Watch and Lease:
/// Txn(If create_revision(myKey) == 0, Then put myKey with lease + get owner, Else get myKey + get owner);
/// if not the owner, wait for the delete of the last key created before mine (Range + Watch), repeat;
/// unlock deletes myKey. One operation = lock + unlock.
/// </summary>
public sealed class LockRecipeWorkload : Workload
{
    /// <inheritdoc />
    public override string Name => "lock-recipe";

    /// <inheritdoc />
    public override async Task SetupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        client.State = await LockServiceWorkload.GrantSessionLeaseAsync(context, client, cancellationToken);
    }

    /// <inheritdoc />
    public override Task CleanupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken) =>
        LockServiceWorkload.RevokeSessionLeaseAsync(client, cancellationToken);

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var leaseId = (long)client.State!;
        var pfx = context.KeyPrefix + client.Random.Next(context.Options.KeySpace).ToString("D8", CultureInfo.InvariantCulture) + "/";
        var myKey = ByteString.CopyFromUtf8(pfx + leaseId.ToString("x", CultureInfo.InvariantCulture));
        var pfxKey = ByteString.CopyFromUtf8(pfx);
        var pfxEnd = PrefixEnd(pfx);

        var getOwner = new RequestOp
        {
            RequestRange = new RangeRequest
            {
                Key = pfxKey,
                RangeEnd = pfxEnd,
                SortTarget = RangeRequest.Types.SortTarget.Create,
                SortOrder = RangeRequest.Types.SortOrder.Ascend,
                Limit = 1,
            },
        };
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = myKey, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = myKey, Lease = leaseId } });
        txn.Success.Add(getOwner);
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = myKey } });
        txn.Failure.Add(getOwner);
        var response = await client.Kv.TxnAsync(txn, client.Call(cancellationToken));
        var myRev = response.Succeeded ? response.Header.Revision : response.Responses[0].ResponseRange.Kvs[0].CreateRevision;
        var owner = response.Responses[1].ResponseRange.Kvs;
        if (owner.Count > 0 && owner[0].CreateRevision != myRev)
        {
            await WaitDeletesAsync(client, pfxKey, pfxEnd, myRev - 1, cancellationToken);
        }

        await client.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = myKey }, client.Call(cancellationToken));
    }

    // etcd's waitDeletes: until no key under the prefix was created at or before maxCreateRev,
    // watch the newest such key for its delete.
    private static async Task WaitDeletesAsync(BenchClient client, ByteString pfxKey, ByteString pfxEnd, long maxCreateRev, CancellationToken cancellationToken)
    {
        while (true)
        {
            var last = await client.Kv.RangeAsync(new RangeRequest
            {
                Key = pfxKey,
                RangeEnd = pfxEnd,
                SortTarget = RangeRequest.Types.SortTarget.Create,
                SortOrder = RangeRequest.Types.SortOrder.Descend,
                Limit = 1,
                MaxCreateRevision = maxCreateRev,
            }, client.Call(cancellationToken));
            if (last.Kvs.Count == 0)
            {
                return;
            }

            await WaitDeleteAsync(client, last.Kvs[0].Key, last.Header.Revision, cancellationToken);
        }
    }

    private static async Task WaitDeleteAsync(BenchClient client, ByteString key, long revision, CancellationToken cancellationToken)
    {
        using var call = client.Watch.Watch(client.Call(cancellationToken));
        await call.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = new WatchCreateRequest { Key = key, StartRevision = revision + 1, Filters = { WatchCreateRequest.Types.FilterType.Noput } },
        }, cancellationToken);
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            var watchResponse = call.ResponseStream.Current;
            if (watchResponse.Canceled)
            {
                throw new RpcException(new Status(StatusCode.Aborted, "watch canceled: " + watchResponse.CancelReason));
            }

            if (watchResponse.Events.Any(e => e.Type == Event.Types.EventType.Delete))
            {
                await call.RequestStream.CompleteAsync();
                return;
            }
        }

        throw new RpcException(new Status(StatusCode.Unavailable, "watch stream ended before the delete"));
    }
}
