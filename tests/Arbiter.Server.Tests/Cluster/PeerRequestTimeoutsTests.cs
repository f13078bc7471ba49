using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Arbiter.Node.Cluster;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;

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

    private SilentPeer _silentPeer = null!;
    private InProcessRaftMember _member = null!;

    public async Task InitializeAsync()
    {
        _silentPeer = SilentPeer.Start();
        var self = InProcessRaftMember.FreeEndPoint();
        _member = await InProcessRaftMember.StartAsync(self, [self, _silentPeer.EndPoint], Configured);
    }

    public async Task DisposeAsync()
    {
        await _member.DisposeAsync();
        await _silentPeer.DisposeAsync();
    }

    private RaftClusterMember SilentMember => _member.MemberAt(_silentPeer.EndPoint);

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
        var error = Assert.Throws<InvalidOperationException>(() => PeerRequestTimeouts.Verify(SilentMember, Short, Short));
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
    public void The_request_and_connect_timeouts_can_differ()
    {
        PeerRequestTimeouts.Set(SilentMember, Configured, Short);
        Assert.Equal(Configured, PeerRequestTimeouts.RequestTimeoutOf(SilentMember));
        Assert.Equal(Short, PeerRequestTimeouts.ConnectTimeoutOf(SilentMember));
    }

    [Fact]
    public void A_timeout_must_be_positive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PeerRequestTimeouts.Set(SilentMember, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => PeerRequestTimeouts.Set(SilentMember, Configured, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => PeerRequestTimeouts.Set(SilentMember, TimeSpan.Zero, Configured));
    }

    /// <summary>Accepts connections and holds them open, never reading or answering: what a stopped process's kernel does.</summary>
    private sealed class SilentPeer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<Socket> _accepted = [];
        private Task _accepting = Task.CompletedTask;

        public EndPoint EndPoint => _listener.LocalEndpoint;

        public static SilentPeer Start()
        {
            var peer = new SilentPeer();
            peer._listener.Start();
            peer._accepting = peer.AcceptForeverAsync();
            return peer;
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _accepting.ContinueWith(_ => { }, TaskScheduler.Default);
            _listener.Dispose();
            lock (_accepted)
            {
                foreach (var socket in _accepted)
                {
                    socket.Dispose();
                }
            }
        }

        private async Task AcceptForeverAsync()
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync();
                lock (_accepted)
                {
                    _accepted.Add(socket);
                }
            }
        }
    }
}
