using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>What a scenario needs from the server under test, whichever it is.</summary>
public interface ITarget
{
    /// <summary>"etcd", "arbiter" or "arbiter-cluster".</summary>
    string TargetName { get; }

    /// <summary>"http://127.0.0.1:port".</summary>
    string Endpoint { get; }

    GrpcChannel Channel { get; }

    /// <summary>Server output so far, for failure reports.</summary>
    string Log { get; }
}

/// <summary>
/// One running server shared by the tests of a class (IClassFixture). Tests isolate themselves by
/// key prefix. Subclasses choose the server; a cluster fixture chooses the member clients talk to.
/// </summary>
public abstract class ServerFixture : ITarget, IAsyncLifetime
{
    private readonly ServerProcess? _server;
    private GrpcChannel? _channel;
    private CallInvoker? _invoker;

    protected ServerFixture(ServerProcess server) => _server = server;

    /// <summary>For fixtures whose <see cref="Server"/> is known only once started (a cluster member).</summary>
    protected ServerFixture()
    {
    }

    /// <summary>The process clients of this fixture talk to.</summary>
    public virtual ServerProcess Server => _server ?? throw new InvalidOperationException("fixture not started");

    public abstract string TargetName { get; }

    /// <summary>Members of the cluster behind <see cref="Endpoint"/>: 1 for a single server.</summary>
    public virtual int ClusterSize => 1;

    /// <summary>Whether the server behind <see cref="Endpoint"/> is (meant to be) the Raft leader.</summary>
    public virtual bool EndpointIsLeader => true;

    public string Endpoint => Server.Endpoint;

    public GrpcChannel Channel => _channel ?? throw new InvalidOperationException("fixture not started");

    public virtual string Log => Server.Log;

    /// <summary>The channel with a default deadline on unary calls; clients should be built on this.</summary>
    public CallInvoker Invoker => _invoker ?? throw new InvalidOperationException("fixture not started");

    public KV.KVClient Kv => new(Invoker);

    public Lease.LeaseClient Lease => new(Invoker);

    public Maintenance.MaintenanceClient Maintenance => new(Invoker);

    public async Task InitializeAsync()
    {
        await StartServerAsync().ConfigureAwait(false);
        _channel = GrpcChannel.ForAddress(Server.Endpoint, ChannelOptions);
        _invoker = _channel.Intercept(new DefaultDeadlineInterceptor(TimeSpan.FromSeconds(30)));
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        await StopServerAsync().ConfigureAwait(false);
    }

    protected virtual Task StartServerAsync() => Server.StartAsync();

    protected virtual ValueTask StopServerAsync() => _server?.DisposeAsync() ?? ValueTask.CompletedTask;

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

/// <summary>
/// Three Arbiter processes in one Raft cluster; clients talk to a follower, so every request
/// exercises forwarding, ReadIndex reads and the watch feed of a non-leader.
/// </summary>
public sealed class ArbiterClusterFixture : ServerFixture
{
    private ArbiterCluster? _cluster;
    private ArbiterClusterMember? _follower;

    public override string TargetName => "arbiter-cluster";

    public ArbiterCluster Cluster => _cluster ?? throw new InvalidOperationException("fixture not started");

    public override ServerProcess Server => _follower ?? throw new InvalidOperationException("fixture not started");

    public override int ClusterSize => 3;

    public override bool EndpointIsLeader => false;

    /// <summary>The end of every member's output: a follower's failure is often explained by the leader's log.</summary>
    public override string Log => _cluster == null
        ? string.Empty
        : string.Join("\n", _cluster.Members.Select(m => $"===== {m.Name}{(m == _follower ? " (client endpoint)" : string.Empty)} =====\n{Tail(m.Log, 100)}"));

    /// <summary>
    /// etcd's default timings (100/1000 ms), not the quick-failover ones: on a loaded test machine a
    /// spurious election would turn the chosen follower into the leader mid-suite. The peer request
    /// timeout is twice the derived 250 ms: DotNext's leader steps down after one heartbeat round in
    /// which no majority answered within it, and these suites run beside the other test projects at
    /// load 20–30, where a round sometimes takes longer (a recipe's write through the follower then
    /// got "possibly due to previous leader failure" in a clean-clone CI run). They test the API
    /// through a follower, not failover; the failover tests keep the default.
    /// </summary>
    public static ClusterSettings Settings => new() { HeartbeatIntervalMs = 100, ElectionTimeoutMs = 1000, ExtraArguments = ["--peer-request-timeout", "500"] };

    protected override async Task StartServerAsync()
    {
        _cluster = await ArbiterCluster.StartAsync(3, Settings).ConfigureAwait(false);

        // A fresh cluster may change leader once early on (a loaded machine); the warm-up then gets
        // etcd's leader-loss answer (Unavailable) and starts again on the new leader's follower.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            _follower = await _cluster.FollowerAsync().ConfigureAwait(false);
            try
            {
                await WarmUpForwardingAsync(_follower).ConfigureAwait(false);
                return;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// A lease round and a linearizable read through the follower (forwarded proposals and a read
    /// index, none of which changes the revision: the differential test needs a fresh store). The
    /// first forwarded call opens the follower's channel to the leader, which on a loaded machine
    /// can take longer than the 2 s lease TTLs some tests use.
    /// </summary>
    private static async Task WarmUpForwardingAsync(ArbiterClusterMember follower)
    {
        using var channel = follower.OpenChannel();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var lease = new Lease.LeaseClient(channel);
        var granted = await lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, deadline: deadline).ConfigureAwait(false);
        using (var keepAlive = lease.LeaseKeepAlive(deadline: deadline))
        {
            await keepAlive.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = granted.ID }).ConfigureAwait(false);
            await keepAlive.RequestStream.CompleteAsync().ConfigureAwait(false);
            await keepAlive.ResponseStream.MoveNext(CancellationToken.None).ConfigureAwait(false);
        }

        await lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = granted.ID }, deadline: deadline).ConfigureAwait(false);
        await lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = granted.ID }, deadline: deadline).ConfigureAwait(false);
        await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("~fixture-warm-up") }, deadline: deadline).ConfigureAwait(false);
    }

    protected override ValueTask StopServerAsync() => _cluster?.DisposeAsync() ?? ValueTask.CompletedTask;

    private static string Tail(string text, int linesMax)
    {
        var lines = text.Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - linesMax)));
    }
}
