using Arbiter.Protocol.Etcd;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>txn</c>: compare-and-swap on a random preloaded key — Txn(If mod_revision == last seen, Then put,
/// Else range). One round trip per attempt; a lost race counts as a conflict (an operation, not an
/// error) and refreshes the revision the client believes.
/// </summary>
public sealed class TxnWorkload : ValueWritingWorkload
{
    private long[] _modRevisions = [];
    private long _conflicts;

    /// <inheritdoc />
    public override string Name => "txn";

    /// <inheritdoc />
    public override async Task SetupAsync(WorkloadContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        await PreloadAsync(context, context.KeyPrefix, cancellationToken);
        // Unknown revisions start at 0: the first attempt on each key conflicts and learns it.
        _modRevisions = new long[context.Options.KeySpace];
    }

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var slot = client.Random.Next(context.Options.KeySpace);
        var key = Key(context.KeyPrefix, slot);
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare
        {
            Key = key,
            Target = Compare.Types.CompareTarget.Mod,
            Result = Compare.Types.CompareResult.Equal,
            ModRevision = Volatile.Read(ref _modRevisions[slot]),
        });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = (Google.Protobuf.ByteString)client.State! } });
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = key } });
        var response = await client.Kv.TxnAsync(txn, client.Call(cancellationToken));
        if (response.Succeeded)
        {
            Volatile.Write(ref _modRevisions[slot], response.Header.Revision);
            return;
        }

        if (context.Measurement.Recording)
        {
            Interlocked.Increment(ref _conflicts);
        }

        var kvs = response.Responses[0].ResponseRange.Kvs;
        Volatile.Write(ref _modRevisions[slot], kvs.Count > 0 ? kvs[0].ModRevision : 0);
    }

    /// <inheritdoc />
    public override async Task<WorkloadResult> RunAsync(WorkloadContext context, CancellationToken cancellationToken)
    {
        var result = await base.RunAsync(context, cancellationToken);
        var extra = new Dictionary<string, double>(result.Extra, StringComparer.Ordinal) { ["txnConflicts"] = Interlocked.Read(ref _conflicts) };
        return result with { Extra = extra };
    }
}
