using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>What a scenario needs from the server under test, whichever it is.</summary>
public interface ITarget
{
    /// <summary>"etcd" or "arbiter".</summary>
    string TargetName { get; }

    /// <summary>"http://127.0.0.1:port".</summary>
    string Endpoint { get; }

    GrpcChannel Channel { get; }

    /// <summary>Server output so far, for failure reports.</summary>
    string Log { get; }
}

/// <summary>
/// One running server shared by the tests of a class (IClassFixture). Tests isolate themselves by
/// key prefix. Subclasses choose the server.
/// </summary>
public abstract class ServerFixture : ITarget, IAsyncLifetime
{
    private GrpcChannel? _channel;
    private CallInvoker? _invoker;

    protected ServerFixture(ServerProcess server) => Server = server;

    public ServerProcess Server { get; }

    public abstract string TargetName { get; }

    public string Endpoint => Server.Endpoint;

    public GrpcChannel Channel => _channel ?? throw new InvalidOperationException("fixture not started");

    public string Log => Server.Log;

    /// <summary>The channel with a default deadline on unary calls; clients should be built on this.</summary>
    public CallInvoker Invoker => _invoker ?? throw new InvalidOperationException("fixture not started");

    public KV.KVClient Kv => new(Invoker);

    public Lease.LeaseClient Lease => new(Invoker);

    public Maintenance.MaintenanceClient Maintenance => new(Invoker);

    public async Task InitializeAsync()
    {
        await Server.StartAsync().ConfigureAwait(false);
        _channel = GrpcChannel.ForAddress(Server.Endpoint, ChannelOptions);
        _invoker = _channel.Intercept(new DefaultDeadlineInterceptor(TimeSpan.FromSeconds(30)));
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        await Server.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Large enough to send oversized requests and read big ranges: the server must decide.</summary>
    public static GrpcChannelOptions ChannelOptions => new()
    {
        MaxSendMessageSize = 16 * 1024 * 1024,
        MaxReceiveMessageSize = 64 * 1024 * 1024,
    };
}

/// <summary>A fresh real etcd 3.4.</summary>
public sealed class EtcdFixture() : ServerFixture(new EtcdProcess())
{
    public override string TargetName => "etcd";
}

/// <summary>A fresh Arbiter server.</summary>
public sealed class ArbiterFixture() : ServerFixture(new ArbiterProcess())
{
    public override string TargetName => "arbiter";
}
