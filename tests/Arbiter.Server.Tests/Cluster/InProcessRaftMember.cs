using System.Net;
using Arbiter.Node.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>
/// A started DotNext member over TCP on loopback with an in-memory log, for tests of how Arbiter
/// drives DotNext. Its election timeout is ten minutes, so it never campaigns on its own.
/// </summary>
internal sealed class InProcessRaftMember : IAsyncDisposable
{
    private const int NeverMs = 600_000;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "arbiter-raft-member-" + Guid.NewGuid().ToString("N"));
    private readonly ConsensusOnlyState _log = new();
    private FileMembershipStorage _membership = null!;

    private readonly IPEndPoint _self;
    private readonly IReadOnlyList<EndPoint> _members;
    private readonly TimeSpan _requestTimeout;

    private InProcessRaftMember(IPEndPoint self, IReadOnlyList<EndPoint> members, TimeSpan requestTimeout)
    {
        _self = self;
        _members = members;
        _requestTimeout = requestTimeout;
    }

    public RaftCluster Raft { get; private set; } = null!;

    /// <summary>A free loopback endpoint for a member.</summary>
    public static IPEndPoint FreeEndPoint() => new(IPAddress.Loopback, Infrastructure.Backend.FreePort());

    /// <summary>Starts the member at <paramref name="self"/> in a configuration of <paramref name="members"/> (itself included).</summary>
    public static async Task<InProcessRaftMember> StartAsync(IPEndPoint self, IReadOnlyList<EndPoint> members, TimeSpan requestTimeout)
    {
        var member = new InProcessRaftMember(self, members, requestTimeout);
        await member.StartCoreAsync();
        return member;
    }

    private async Task StartCoreAsync()
    {
        Directory.CreateDirectory(_directory);
        _membership = new FileMembershipStorage(Path.Combine(_directory, "members"));
        IClusterConfigurationStorage<EndPoint> storage = _membership;
        var configuration = await storage.LoadConfigurationAsync();
        foreach (var endPoint in _members)
        {
            configuration = configuration.Add(endPoint);
        }

        await ((IClusterConfigurationStorage)storage).SaveConfigurationAsync(configuration, 0L);
        Raft = new RaftCluster(new RaftCluster.TcpConfiguration(_self)
        {
            LowerElectionTimeout = NeverMs,
            UpperElectionTimeout = NeverMs + 1,
            RequestTimeout = _requestTimeout,
            ConnectTimeout = _requestTimeout,
            ColdStart = false,
            ConfigurationStorage = _membership,
        })
        {
            AuditTrail = _log,
        };
        await Raft.StartAsync(CancellationToken.None);
    }

    /// <summary>This member's connection to the member at <paramref name="endPoint"/>.</summary>
    public RaftClusterMember MemberAt(EndPoint endPoint) => Raft.Members.Single(m => m.IsRemote && m.EndPoint.Equals(endPoint));

    public async ValueTask DisposeAsync()
    {
        await Raft.StopAsync(CancellationToken.None);
        Raft.Dispose();
        _log.Dispose();
        _membership.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
