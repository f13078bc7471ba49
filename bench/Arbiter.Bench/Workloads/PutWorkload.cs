using Arbiter.Protocol.Etcd;

namespace Arbiter.Bench.Workloads;

/// <summary><c>put</c>: one Put of a random key among <c>--key-space</c>, value of <c>--value-size</c> bytes.</summary>
public sealed class PutWorkload : ValueWritingWorkload
{
    /// <inheritdoc />
    public override string Name => "put";

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var request = new PutRequest
        {
            Key = Key(context.KeyPrefix, client.Random.Next(context.Options.KeySpace)),
            Value = (Google.Protobuf.ByteString)client.State!,
        };
        await client.Kv.PutAsync(request, client.Call(cancellationToken));
    }
}
