using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>crdt-increment</c>: one increment of an eventual-tier PN-counter, written locally (durable on
/// the member before the answer). With <c>--key-space 1</c> every client increments the same
/// counter, the like-count case. Arbiter only (arbiter.v1.Crdt).
/// </summary>
public sealed class CrdtIncrementWorkload : Workload
{
    /// <inheritdoc />
    public override string Name => "crdt-increment";

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var request = new CrdtUpdateRequest
        {
            Key = context.KeyPrefix + client.Random.Next(context.Options.KeySpace).ToString("D8", System.Globalization.CultureInfo.InvariantCulture),
            Type = CrdtType.PnCounter,
            Operation = new CrdtOperation { CounterAdd = new CounterAdd { Delta = 1 } },
        };
        await client.Crdt.UpdateAsync(request, client.Call(cancellationToken));
    }
}

/// <summary>
/// <c>cas-counter</c>: the same counter in the CP keyspace, as an etcd user would write it: read the
/// value and its mod revision, then a Txn that puts value+1 only if the mod revision is unchanged;
/// a lost race reads again. One operation is one successful increment; the lost races are reported
/// as <c>retries</c>. Runs on etcd and Arbiter alike.
/// </summary>
public sealed class CasCounterWorkload : Workload
{
    private long _retries;

    /// <inheritdoc />
    public override string Name => "cas-counter";

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var key = Key(context.KeyPrefix, client.Random.Next(context.Options.KeySpace));
        while (true)
        {
            var current = await client.Kv.RangeAsync(new RangeRequest { Key = key }, client.Call(cancellationToken));
            var kv = current.Kvs.FirstOrDefault();
            var value = kv is null ? 0 : long.Parse(kv.Value.ToStringUtf8(), System.Globalization.CultureInfo.InvariantCulture);
            var txn = new TxnRequest();
            txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = kv?.ModRevision ?? 0 });
            txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFromUtf8((value + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)) } });
            var result = await client.Kv.TxnAsync(txn, client.Call(cancellationToken));
            if (result.Succeeded)
            {
                return;
            }

            Interlocked.Increment(ref _retries);
        }
    }

    /// <inheritdoc />
    public override Task CleanupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        // Cleanup runs before the result is built, once per client (concurrently).
        lock (Extra)
        {
            Extra["retries"] = Interlocked.Read(ref _retries);
        }

        return Task.CompletedTask;
    }
}
