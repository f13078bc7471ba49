using Arbiter.Node;
using Arbiter.Protocol.Health;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>
/// grpc.health.v1.Health as etcd serves it (grpc-go's health server): the overall service ""
/// is known, anything else is <c>NotFound "unknown service"</c>. "" is SERVING while the member
/// has a leader, so load balancers stop sending to a member that cannot answer.
/// </summary>
public sealed class HealthService(ArbiterNode node, ServerShutdown shutdown) : Health.HealthBase
{
    /// <inheritdoc />
    public override Task<HealthCheckResponse> Check(HealthCheckRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Service.Length != 0)
        {
            throw new RpcException(new Status(StatusCode.NotFound, "unknown service"));
        }

        return Task.FromResult(new HealthCheckResponse { Status = CurrentStatus() });
    }

    /// <summary>Sends the status now and whenever it changes, until the client goes away.</summary>
    public override async Task Watch(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseStream);
        using var lifetime = shutdown.Link(context);
        var token = lifetime.Token;
        if (request.Service.Length != 0)
        {
            await responseStream.WriteAsync(new HealthCheckResponse { Status = HealthCheckResponse.Types.ServingStatus.ServiceUnknown }, token).ConfigureAwait(false);
            await WaitForCancellationAsync(token).ConfigureAwait(false);
            return;
        }

        var last = CurrentStatus();
        await responseStream.WriteAsync(new HealthCheckResponse { Status = last }, token).ConfigureAwait(false);
        try
        {
            // Leadership can change only in a cluster; a one-second check is cheap and bounds the delay.
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            while (await timer.WaitForNextTickAsync(token).ConfigureAwait(false))
            {
                var now = CurrentStatus();
                if (now != last)
                {
                    last = now;
                    await responseStream.WriteAsync(new HealthCheckResponse { Status = now }, token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    private HealthCheckResponse.Types.ServingStatus CurrentStatus() => node.HasLeader
        ? HealthCheckResponse.Types.ServingStatus.Serving
        : HealthCheckResponse.Types.ServingStatus.NotServing;

    private static async Task WaitForCancellationAsync(CancellationToken token)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
