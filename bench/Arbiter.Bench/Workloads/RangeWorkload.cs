using Arbiter.Protocol.Etcd;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>range-linearizable</c> / <c>range-serializable</c>: a single-key Range of a random preloaded key.
/// </summary>
public sealed class RangeWorkload(bool serializable) : Workload
{
    /// <inheritdoc />
    public override string Name => serializable ? "range-serializable" : "range-linearizable";

    /// <inheritdoc />
    public override Task SetupAsync(WorkloadContext context, CancellationToken cancellationToken) =>
        PreloadAsync(context, context.KeyPrefix, cancellationToken);

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var request = new RangeRequest
        {
            Key = Key(context.KeyPrefix, client.Random.Next(context.Options.KeySpace)),
            Serializable = serializable,
        };
        var response = await client.Kv.RangeAsync(request, client.Call(cancellationToken));
        if (response.Kvs.Count != 1)
        {
            throw new InvalidOperationException($"expected one key, got {response.Kvs.Count}");
        }
    }
}
