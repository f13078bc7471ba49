namespace Arbiter.Bench.Workloads;

/// <summary>A workload whose clients write a value of the configured size, made once per client.</summary>
public abstract class ValueWritingWorkload : Workload
{
    /// <summary>Makes the client's value (stored in <see cref="BenchClient.State"/>) once, outside the measured loop.</summary>
    public override Task SetupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        client.State = Value(context.Options.ValueSizeBytes, client.Index);
        return Task.CompletedTask;
    }
}
