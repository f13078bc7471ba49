using System.Globalization;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>fill</c>: one Put per key in slot order 0, 1, 2… (wrapping at <c>--key-space</c>), shared by
/// all clients, so <c>--total</c> = key space writes every key exactly once — one pass of the
/// memory experiment (bench/memory.sh). Values are <c>--value-size</c> bytes.
/// </summary>
public sealed class FillWorkload : ValueWritingWorkload
{
    private long _nextSlot = -1;

    /// <inheritdoc />
    public override string Name => "fill";

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var slot = (int)(Interlocked.Increment(ref _nextSlot) % context.Options.KeySpace);
        var request = new PutRequest
        {
            // "/bench/fill/0000000042": the same keys in every pass and for both systems.
            Key = ByteString.CopyFromUtf8(context.KeyPrefix + slot.ToString("D10", CultureInfo.InvariantCulture)),
            Value = (ByteString)client.State!,
        };
        await client.Kv.PutAsync(request, client.Call(cancellationToken));
    }
}
