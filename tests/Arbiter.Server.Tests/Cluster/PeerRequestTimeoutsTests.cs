using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Arbiter.Node.Cluster;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>
/// One member's request timeout in DotNext's TCP transport, set through <see cref="PeerRequestTimeouts"/>:
/// pins the private fields it relies on, and shows that the next request to a member that accepts
/// connections but never answers (a stopped process) fails after the new timeout.
/// </summary>
public sealed class PeerRequestTimeoutsTests : IAsyncLifetime
{
    /// <summary>Far longer than the short timeout: a request still under it fails this test.</summary>
    private static readonly TimeSpan Configured = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(50);

    private MemberBesideASilentPeer _member = null!;

    public async Task InitializeAsync() => _member = await MemberBesideASilentPeer.StartAsync(Configured);

    public async Task DisposeAsync() => await _member.DisposeAsync();

    private RaftClusterMember SilentMember => _member.Raft.Members.Single(m => m.IsRemote);

    [Fact]
    public void The_fields_hold_the_configured_timeouts()
    {
        PeerRequestTimeouts.Verify(SilentMember, Configured, Configured);
        Assert.Equal(Configured, PeerRequestTimeouts.RequestTimeoutOf(SilentMember));
        Assert.Equal(Configured, PeerRequestTimeouts.ConnectTimeoutOf(SilentMember));
    }

    [Fact]
    public void Verify_names_the_problem_when_the_timeouts_are_not_where_expected()
    {
        var error = Assert.Throws<InvalidOperationException>(() => PeerRequestTimeouts.Verify(SilentMember, Short, Configured));
        Assert.Contains("DotNext", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_to_a_member_that_never_answers_fails_after_the_timeout_set_for_it()
    {
        PeerRequestTimeouts.Set(SilentMember, Short);
        Assert.Equal(Short, PeerRequestTimeouts.RequestTimeoutOf(SilentMember));
        Assert.Equal(Short, PeerRequestTimeouts.ConnectTimeoutOf(SilentMember));

        var watch = Stopwatch.StartNew();
        await Assert.ThrowsAsync<MemberUnavailableException>(() =>
            ((IRaftClusterMember)SilentMember).PreVoteAsync(term: 1, lastLogIndex: 0, lastLogTerm: 0, CancellationToken.None));
        Assert.True(watch.Elapsed < Configured / 2, $"the pre-vote failed after {watch.ElapsedMilliseconds} ms: the configured {Configured.TotalSeconds} s applied, not the {Short.TotalMilliseconds} ms set");

        PeerRequestTimeouts.Set(SilentMember, Configured);
        PeerRequestTimeouts.Verify(SilentMember, Configured, Configured);
    }

    [Fact]
    public void A_timeout_must_be_positive() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => PeerRequestTimeouts.Set(SilentMember, TimeSpan.Zero));

    /// <summary>A started DotNext member whose only peer accepts connections and never answers (what a stopped process's kernel does).</summary>
    private sealed class MemberBesideASilentPeer : IAsyncDisposable
    {
        private readonly string _directory = Path.Combine(Path.GetTempPath(), "arbiter-peer-timeouts-" + Guid.NewGuid().ToString("N"));
        private readonly TcpListener _silentPeer = new(IPAddress.Loopback, 0);
        private readonly List<Socket> _accepted = [];
        private readonly ConsensusOnlyState _log = new();
        private FileMembershipStorage _membership = null!;
        private Task _accepting = Task.CompletedTask;

        public RaftCluster Raft { get; private set; } = null!;

        public static async Task<MemberBesideASilentPeer> StartAsync(TimeSpan timeout)
        {
            var member = new MemberBesideASilentPeer();
            await member.StartCoreAsync(timeout);
            return member;
        }

        private async Task StartCoreAsync(TimeSpan timeout)
        {
            Directory.CreateDirectory(_directory);
            _silentPeer.Start();
            _accepting = AcceptForeverAsync();
            var self = new IPEndPoint(IPAddress.Loopback, FreePort());

            _membership = new FileMembershipStorage(Path.Combine(_directory, "members"));
            IClusterConfigurationStorage<EndPoint> storage = _membership;
            var configuration = await storage.LoadConfigurationAsync();
            configuration = configuration.Add(self).Add(_silentPeer.LocalEndpoint);
            await ((IClusterConfigurationStorage)storage).SaveConfigurationAsync(configuration, 0L);

            Raft = new RaftCluster(new RaftCluster.TcpConfiguration(self)
            {
                // No election during the test: the member calls the silent peer only when told to.
                LowerElectionTimeout = 600_000,
                UpperElectionTimeout = 600_001,
                RequestTimeout = timeout,
                ConnectTimeout = timeout,
                ColdStart = false,
                ConfigurationStorage = _membership,
            })
            {
                AuditTrail = _log,
            };
            await Raft.StartAsync(CancellationToken.None);
        }

        public async ValueTask DisposeAsync()
        {
            await Raft.StopAsync(CancellationToken.None);
            Raft.Dispose();
            _log.Dispose();
            _membership.Dispose();
            _silentPeer.Stop();
            await _accepting.ContinueWith(_ => { }, TaskScheduler.Default);
            lock (_accepted)
            {
                foreach (var socket in _accepted)
                {
                    socket.Dispose();
                }
            }

            Directory.Delete(_directory, recursive: true);
        }

        private async Task AcceptForeverAsync()
        {
            while (true)
            {
                var socket = await _silentPeer.AcceptSocketAsync();
                lock (_accepted)
                {
                    _accepted.Add(socket);
                }
            }
        }

        private static int FreePort()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            return ((IPEndPoint)probe.LocalEndpoint).Port;
        }
    }
}
