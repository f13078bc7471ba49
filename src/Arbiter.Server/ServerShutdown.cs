using Arbiter.Core;
using Grpc.Core;
using Microsoft.Extensions.Hosting;

namespace Arbiter.Server;

/// <summary>
/// Ends long-running calls (watches, keep-alive streams, lock and campaign waits, observers) when
/// the server stops, with etcd's <c>Unavailable "etcdserver: server stopped"</c>, instead of
/// letting them hold shutdown until the host's timeout. Clients reconnect elsewhere.
/// </summary>
public sealed class ServerShutdown(IHostApplicationLifetime lifetime)
{
    /// <summary>Whether the server is stopping.</summary>
    public bool IsStopping => lifetime.ApplicationStopping.IsCancellationRequested;

    /// <summary>A token that fires when the client goes away or the server stops.</summary>
    public CancellationTokenSource Link(ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
    }

    /// <summary>Throws etcd's "server stopped" when the call ended because the server is stopping.</summary>
    public void ThrowIfStopping()
    {
        if (IsStopping)
        {
            throw EtcdErrorInterceptor.ToRpcException(EtcdError.Stopped);
        }
    }
}
