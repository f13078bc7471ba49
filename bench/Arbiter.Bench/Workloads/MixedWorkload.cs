using Arbiter.Protocol.Etcd;

namespace Arbiter.Bench.Workloads;

/// <summary><c>mixed</c>: a linearizable single-key Range with probability <c>--read-ratio</c>, else a Put.</summary>
public sealed class MixedWorkload : ValueWritingWorkload
{
    /// <inheritdoc />
    public override string Name => "mixed";

    /// <inheritdoc />
    public override Task SetupAsync(WorkloadContext context, CancellationToken cancellationToken) =>
        PreloadAsync(context, context.KeyPrefix, cancellationToken);

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var key = Key(context.KeyPrefix, client.Random.Next(context.Options.KeySpace));
        if (client.Random.NextDouble() < context.Options.ReadRatio)
        {
            await client.Kv.RangeAsync(new RangeRequest { Key = key }, client.Call(cancellationToken));
        }
        else
        {
            await client.Kv.PutAsync(new PutRequest { Key = key, Value = (Google.Protobuf.ByteString)client.State! }, client.Call(cancellationToken));
        }
    }
}
