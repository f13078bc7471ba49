using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;
using LockClient = Arbiter.Protocol.Lock.Lock.LockClient;

namespace Arbiter.Bench.Workloads;

/// <summary>One simulated client: generated gRPC stubs over its channel, its own random source and state.</summary>
public sealed class BenchClient
{
    private readonly int _requestTimeoutMs;

    /// <summary>Creates client <paramref name="index"/> over <paramref name="channel"/>.</summary>
    public BenchClient(int index, GrpcChannel channel, int requestTimeoutMs, int seed)
    {
        Index = index;
        Kv = new KV.KVClient(channel);
        Lease = new Lease.LeaseClient(channel);
        Watch = new Watch.WatchClient(channel);
        Lock = new LockClient(channel);
        Crdt = new Arbiter.Protocol.Crdt.Crdt.CrdtClient(channel);
        Random = new Random(seed);
        _requestTimeoutMs = requestTimeoutMs;
    }

    /// <summary>Client number (0-based).</summary>
    public int Index { get; }

    /// <summary>etcdserverpb.KV.</summary>
    public KV.KVClient Kv { get; }

    /// <summary>etcdserverpb.Lease.</summary>
    public Lease.LeaseClient Lease { get; }

    /// <summary>etcdserverpb.Watch.</summary>
    public Watch.WatchClient Watch { get; }

    /// <summary>v3lockpb.Lock.</summary>
    public LockClient Lock { get; }

    /// <summary>arbiter.v1.Crdt (the eventual tier).</summary>
    public Arbiter.Protocol.Crdt.Crdt.CrdtClient Crdt { get; }

    /// <summary>This client's random source (seeded per client, so runs repeat).</summary>
    public Random Random { get; }

    /// <summary>Per-client workload state (lease id, keep-alive stream…).</summary>
    public object? State { get; set; }

    /// <summary>Call options with the per-request deadline.</summary>
    public CallOptions Call(CancellationToken cancellationToken) =>
        new(deadline: DateTime.UtcNow.AddMilliseconds(_requestTimeoutMs), cancellationToken: cancellationToken);
}
