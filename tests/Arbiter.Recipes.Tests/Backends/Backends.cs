using Arbiter.Client;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Embedded;
using Arbiter.Node;

namespace Arbiter.Recipes.Tests.Backends;

/// <summary>An in-memory <see cref="ArbiterNode"/> in the test process.</summary>
public sealed class EmbeddedBackend : IBackend, IAsyncLifetime
{
    private ArbiterNode? _node;

    public string Name => "embedded";

    public string? Endpoint => null;

    public string Log => string.Empty;

    public ArbiterClient NewClient() => ArbiterClient.ForNode(_node ?? throw new InvalidOperationException("not started"));

    public async Task InitializeAsync() =>
        _node = await ArbiterNode.StartAsync(new NodeOptions { FsyncEnabled = false, LeaseCheckIntervalMsMax = 100 });

    public async Task DisposeAsync()
    {
        if (_node != null)
        {
            await _node.DisposeAsync();
        }
    }
}

/// <summary>A server process (Arbiter or etcd) from the compatibility fixtures.</summary>
public abstract class ProcessBackend(ServerFixture fixture) : IBackend, IAsyncLifetime
{
    public ServerFixture Fixture { get; } = fixture;

    public string Name => Fixture.TargetName;

    public string? Endpoint => Fixture.Endpoint;

    public string Log => Fixture.Log;

    public ArbiterClient NewClient() => ArbiterClient.Connect(Fixture.Endpoint);

    public Task InitializeAsync() => Fixture.InitializeAsync();

    public Task DisposeAsync() => Fixture.DisposeAsync();
}

/// <summary>A fresh Arbiter server process.</summary>
public sealed class ArbiterServerBackend() : ProcessBackend(new ArbiterFixture());

/// <summary>A fresh real etcd 3.4 process.</summary>
public sealed class EtcdBackend() : ProcessBackend(new EtcdFixture());

/// <summary>A 3-process Arbiter cluster; clients connect to a follower only.</summary>
public sealed class ArbiterClusterBackend() : ProcessBackend(new ArbiterClusterFixture());
