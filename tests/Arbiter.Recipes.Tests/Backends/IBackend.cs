using Arbiter.Client;

namespace Arbiter.Recipes.Tests.Backends;

/// <summary>Something the contract suite runs against: an embedded node, an Arbiter server process, an Arbiter cluster (through a follower) or a real etcd.</summary>
public interface IBackend
{
    /// <summary>"embedded", "arbiter", "arbiter-cluster" or "etcd".</summary>
    string Name { get; }

    /// <summary>The gRPC endpoint, or null for the embedded node (no other process can reach it).</summary>
    string? Endpoint { get; }

    /// <summary>Server output so far, for failure reports.</summary>
    string Log { get; }

    /// <summary>A new independent client (its own connection where there is one).</summary>
    ArbiterClient NewClient();
}
