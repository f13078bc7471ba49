using Arbiter.Crdt;
using Arbiter.Protocol.Internal;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Crdt;

/// <summary>Another member of the cluster as the eventual tier reaches it.</summary>
/// <param name="MemberId">Its Raft member id.</param>
/// <param name="ClientUrl">The client URL its CrdtPeer service answers on.</param>
internal sealed record CrdtPeerMember(ulong MemberId, string ClientUrl);

/// <summary>
/// Keeps this member's CRDT replica converging with the other members': pushes durable deltas to
/// each member as they appear (with acknowledgements, so each delta goes to a member once unless
/// it is lost), and compares digests with every member on a timer and after any failure, so that a
/// member that was down, cut off or wiped, or that missed deltas the buffer no longer holds, is
/// repaired with full states. Who the other members are comes from the Raft configuration.
/// </summary>
internal sealed class CrdtAntiEntropy : IAsyncDisposable
{
    private readonly CrdtReplica _replica;
    private readonly Func<CancellationToken, Task<IReadOnlyList<CrdtPeerMember>>> _listPeers;
    private readonly Func<string, GrpcChannel> _channelTo;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Dictionary<ulong, PeerLink> _links = [];

    /// <summary>The links as the gossip loop last left them, for readers on other threads (the metrics).</summary>
    private volatile PeerLink[] _linksView = [];
    private readonly Task _loop;
    private IReadOnlyList<CrdtPeerMember> _peers = [];
    private long _peersListedAtMs;

    private readonly CrdtGossipCounters _counters;

    public CrdtAntiEntropy(CrdtReplica replica, Func<CancellationToken, Task<IReadOnlyList<CrdtPeerMember>>> listPeers, Func<string, GrpcChannel> channelTo, CrdtGossipCounters counters, ILogger logger)
    {
        _replica = replica;
        _counters = counters;
        _listPeers = listPeers;
        _channelTo = channelTo;
        _logger = logger;
        _replica.DeltasAvailable += Wake;
        _loop = Task.Run(LoopAsync);
    }

    private CrdtOptions Options => _replica.Options;

    private void Wake()
    {
        if (_wake.CurrentCount == 0)
        {
            _wake.Release();
        }
    }

    /// <summary>The other members, as last listed (refreshed every second at most).</summary>
    public async Task<IReadOnlyList<CrdtPeerMember>> PeersAsync(CancellationToken cancellationToken)
    {
        if (Environment.TickCount64 - Interlocked.Read(ref _peersListedAtMs) > 1000)
        {
            try
            {
                _peers = await _listPeers(cancellationToken).ConfigureAwait(false);
                Interlocked.Exchange(ref _peersListedAtMs, Environment.TickCount64);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                _logger.LogDebug(e, "Listing members for CRDT anti-entropy failed; keeping the last list");
            }
        }

        return _peers;
    }

    private async Task LoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(Options.GossipIntervalMs, token).ConfigureAwait(false);
                var peers = await PeersAsync(token).ConfigureAwait(false);
                foreach (var peer in peers)
                {
                    if (!_links.TryGetValue(peer.MemberId, out var link) || link.Peer.ClientUrl != peer.ClientUrl)
                    {
                        link = new PeerLink(peer);
                        _links[peer.MemberId] = link;
                    }

                    if (link.Round.IsCompleted)
                    {
                        link.Round = RoundAsync(link, token);
                    }
                }

                foreach (var gone in _links.Keys.Where(id => peers.All(p => p.MemberId != id)).ToList())
                {
                    _links.Remove(gone);
                }

                _linksView = [.. _links.Values];
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                _logger.LogError(e, "CRDT anti-entropy round failed");
            }
        }

        await Task.WhenAll(_links.Values.Select(l => l.Round)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task RoundAsync(PeerLink link, CancellationToken cancellationToken)
    {
        try
        {
            if (link.NeedsRepair || Environment.TickCount64 - link.RepairedAtMs >= Options.RepairIntervalMs)
            {
                await RepairAsync(link, cancellationToken).ConfigureAwait(false);
            }

            // Push what the buffer has past the member's acknowledgement, batch by batch.
            while (!link.NeedsRepair && _replica.DeltasAfter(link.AckedSequence, Options.DeltasPerBatchMax, link.PeerReplica) is var next)
            {
                if (next is not { } batch)
                {
                    link.NeedsRepair = true; // the buffer dropped deltas this member has not acknowledged
                    break;
                }

                if (batch.Deltas.Count == 0)
                {
                    // Nothing new, or only deltas that came from this member: nothing to send.
                    if (batch.LastSequence <= link.AckedSequence)
                    {
                        break;
                    }

                    link.AckedSequence = batch.LastSequence;
                    continue;
                }

                var request = new CrdtDeltaBatch { SenderReplica = _replica.Id.Value, SenderClock = _replica.Now().ToTimestamp(), LastSequence = (ulong)batch.LastSequence };
                request.Deltas.AddRange(batch.Deltas);
                _counters.Add(CrdtGossipKind.Delta, request.CalculateSize());
                var ack = await Client(link).PushDeltasAsync(request, deadline: Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
                _counters.Add(CrdtGossipKind.Ack, ack.CalculateSize());
                link.PeerReplica = ack.Replica;
                link.AckedSequence = batch.LastSequence;
            }

            if (link.Failing)
            {
                _logger.LogInformation("CRDT anti-entropy reaches member {Member:x16} {Again}", link.Peer.MemberId, link.EverReached ? "again" : "(up now)");
                link.Failing = false;
            }

            link.EverReached = true;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            // Unreachable, refused or slow: compare digests when it answers again.
            link.NeedsRepair = true;
            if (!link.Failing)
            {
                // A member never reached is most often one not started yet (a cluster starts one by one).
                _logger.Log(
                    link.EverReached ? LogLevel.Warning : LogLevel.Information,
                    "CRDT anti-entropy cannot reach member {Member:x16} at {Url}: {Reason}", link.Peer.MemberId, link.Peer.ClientUrl, Describe(e));
                link.Failing = true;
            }
        }
    }

    /// <summary>
    /// Digest comparison with one member: their state of every key that differs is joined here,
    /// then this replica's (joined) state of those keys and of the keys they lack is pushed to
    /// them. Afterwards they hold everything this replica had when the round started.
    /// </summary>
    private async Task RepairAsync(PeerLink link, CancellationToken cancellationToken)
    {
        var sequenceAtStart = _replica.LastSequence;
        var digest = new CrdtDigest { SenderReplica = _replica.Id.Value, SenderClock = _replica.Now().ToTimestamp() };
        digest.Keys.AddRange(_replica.Digest());
        var client = Client(link);
        _counters.Add(CrdtGossipKind.Digest, digest.CalculateSize());
        var answer = await client.RepairAsync(digest, deadline: Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
        _counters.Add(CrdtGossipKind.Repair, answer.CalculateSize());
        link.PeerReplica = answer.Replica;
        if (answer.States.Count > 0)
        {
            await _replica.JoinRemoteAsync(answer.States, Hlc.FromTimestamp(answer.Clock), answer.Replica, cancellationToken).ConfigureAwait(false);
        }

        var toPush = _replica.StatesOf(answer.States.Select(s => s.Key).Concat(answer.Wanted));
        for (var start = 0; start < toPush.Count; start += Options.DeltasPerBatchMax)
        {
            var push = new CrdtDeltaBatch { SenderReplica = _replica.Id.Value, SenderClock = _replica.Now().ToTimestamp() };
            push.Deltas.AddRange(toPush.Skip(start).Take(Options.DeltasPerBatchMax));
            _counters.Add(CrdtGossipKind.Repair, push.CalculateSize());
            var ack = await client.PushDeltasAsync(push, deadline: Deadline(), cancellationToken: cancellationToken).ConfigureAwait(false);
            _counters.Add(CrdtGossipKind.Repair, ack.CalculateSize());
        }

        link.AckedSequence = Math.Max(link.AckedSequence, sequenceAtStart);
        link.NeedsRepair = false;
        link.RepairedAtMs = Environment.TickCount64;
        if (answer.States.Count > 0 || toPush.Count > 0)
        {
            _logger.LogInformation(
                "CRDT repair with member {Member:x16}: {Received} key(s) received, {Sent} sent",
                link.Peer.MemberId, answer.States.Count, toPush.Count);
        }
    }

    /// <summary>
    /// A digest repair with every other member now (the pruner's step before folding a departed
    /// replica: afterwards this replica holds everything each member held when it answered).
    /// False if any member did not answer.
    /// </summary>
    public async Task<bool> RepairWithEveryMemberAsync(CancellationToken cancellationToken)
    {
        var peers = await _listPeers(cancellationToken).ConfigureAwait(false);
        foreach (var peer in peers)
        {
            try
            {
                await RepairAsync(new PeerLink(peer), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                _logger.LogInformation("CRDT pruning waits: member {Member:x16} did not answer the digest exchange ({Reason})", peer.MemberId, Describe(e));
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A digest repair with one member now (before a member says it holds a departed replica
    /// pruned: afterwards this replica holds everything the pruner held when it answered). False if
    /// the member is not listed or did not answer.
    /// </summary>
    public async Task<bool> RepairWithMemberAsync(ulong memberId, CancellationToken cancellationToken)
    {
        var peer = (await _listPeers(cancellationToken).ConfigureAwait(false)).FirstOrDefault(p => p.MemberId == memberId);
        if (peer is null)
        {
            return false;
        }

        try
        {
            await RepairAsync(new PeerLink(peer), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            _logger.LogInformation("CRDT retirement waits: member {Member:x16} did not answer the digest exchange ({Reason})", memberId, Describe(e));
            return false;
        }
    }

    /// <summary>
    /// Per member this one gossips with: how many of the deltas this member holds the member has not
    /// acknowledged yet (0 when it is up to date; grows while it is unreachable or behind).
    /// </summary>
    public IEnumerable<(ulong MemberId, long DeltasBehind)> PeerLag()
    {
        var last = _replica.LastSequence;
        foreach (var link in _linksView)
        {
            yield return (link.Peer.MemberId, Math.Max(0, last - link.AckedSequence));
        }
    }

    /// <summary>
    /// Pushes one update's delta to every other member at once and returns how many replicas hold
    /// it (this one included) when <paramref name="required"/> have it or the timeout passed (an
    /// unreachable member is retried until then). Nothing is rolled back on a timeout: gossip keeps
    /// spreading the delta.
    /// </summary>
    public async Task<int> ReplicateAsync(string key, CrdtState delta, int required, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var acknowledged = 1;
        if (required <= acknowledged)
        {
            return acknowledged;
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var batch = new CrdtDeltaBatch { SenderReplica = _replica.Id.Value, SenderClock = _replica.Now().ToTimestamp() };
        batch.Deltas.Add(new CrdtKeyState { Key = key, State = Google.Protobuf.ByteString.CopyFrom(delta.ToBytes()) });
        var batchBytes = batch.CalculateSize();
        var acks = await FromPeersAsync(
            async (peer, token) =>
            {
                _counters.Add(CrdtGossipKind.Delta, batchBytes);
                var ack = await new CrdtPeer.CrdtPeerClient(_channelTo(peer.ClientUrl)).PushDeltasAsync(batch, cancellationToken: token).ResponseAsync.ConfigureAwait(false);
                _counters.Add(CrdtGossipKind.Ack, ack.CalculateSize());
                return ack;
            },
            required - 1,
            deadline.Token,
            cancellationToken).ConfigureAwait(false);
        return 1 + acks.Count;
    }

    /// <summary>How often a majority call looks again for members it has not asked yet, in ms.</summary>
    private const int PeerRelistMs = 200;

    /// <summary>
    /// Runs <paramref name="call"/> against every other member at once until <paramref name="wanted"/>
    /// of them answered or <paramref name="deadline"/> passed, and returns the answers in the order
    /// they came. A member that is starting, not yet listed or briefly unreachable is retried with
    /// backoff, not counted out at its first refusal (a fresh cluster answered a majority write
    /// "1 of 2" at once while its peers' URLs were being learnt); the member list is read again every
    /// <see cref="PeerRelistMs"/> ms for members that joined the list meanwhile.
    /// </summary>
    private async Task<List<T>> FromPeersAsync<T>(Func<CrdtPeerMember, CancellationToken, Task<T>> call, int wanted, CancellationToken deadline, CancellationToken cancellationToken)
        where T : class
    {
        var asked = new HashSet<ulong>();
        var pending = new List<Task<T?>>();
        var answers = new List<T>();
        while (answers.Count < wanted && !deadline.IsCancellationRequested)
        {
            IReadOnlyList<CrdtPeerMember> peers;
            try
            {
                peers = await PeersAsync(deadline).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                break;
            }

            foreach (var peer in peers.Where(p => asked.Add(p.MemberId)))
            {
                pending.Add(UntilAnsweredAsync(peer, call, deadline));
            }

            await Task.WhenAny([.. pending, Task.Delay(PeerRelistMs, deadline)]).ConfigureAwait(false);
            foreach (var done in pending.Where(p => p.IsCompleted).ToList())
            {
                pending.Remove(done);
                if (done.IsCompletedSuccessfully && done.Result is { } answer)
                {
                    answers.Add(answer);
                }
            }
        }

        return answers;
    }

    /// <summary>Calls <paramref name="peer"/>, retrying with backoff until it answers (its answer) or the deadline passes (null).</summary>
    private async Task<T?> UntilAnsweredAsync<T>(CrdtPeerMember peer, Func<CrdtPeerMember, CancellationToken, Task<T>> call, CancellationToken deadline)
        where T : class
    {
        var backoffMs = 20;
        while (!deadline.IsCancellationRequested)
        {
            try
            {
                return await call(peer, deadline).ConfigureAwait(false);
            }
            catch (Exception e) when (!deadline.IsCancellationRequested)
            {
                _logger.LogDebug("CRDT call to member {Member:x16} failed, retrying: {Message}", peer.MemberId, e.Message);
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                return null;
            }

            try
            {
                await Task.Delay(backoffMs, deadline).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return null;
            }

            backoffMs = Math.Min(backoffMs * 2, 200);
        }

        return null;
    }

    /// <summary>
    /// Reads one key from every other member at once and joins what answers into
    /// <paramref name="local"/>, until <paramref name="required"/> replicas (this one included)
    /// answered or the timeout passed; an unreachable member is retried until then, as a majority
    /// write's push is.
    /// </summary>
    public async Task<(CrdtState? State, int ReplicasRead)> ReadAsync(string key, CrdtState? local, int required, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var read = 1;
        if (required <= read)
        {
            return (local, read);
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var remote = await FromPeersAsync(
            (peer, token) => new CrdtPeer.CrdtPeerClient(_channelTo(peer.ClientUrl)).ReadStateAsync(new CrdtReadStateRequest { Key = key }, cancellationToken: token).ResponseAsync,
            required - 1,
            deadline.Token,
            cancellationToken).ConfigureAwait(false);
        var merged = local;
        foreach (var answer in remote.Where(r => !r.State.IsEmpty))
        {
            merged = CrdtReplica.Merge(merged, _replica.WithoutRetired(CrdtState.FromBytes(answer.State.Span)), out _);
        }

        read += remote.Count;

        // Keep what was read: the next local read sees it too (read repair).
        var learned = remote.Where(r => !r.State.IsEmpty).Select(r => new CrdtKeyState { Key = key, State = r.State }).ToList();
        if (learned.Count > 0)
        {
            try
            {
                await _replica.JoinRemoteAsync(learned, remote.Max(r => Hlc.FromTimestamp(r.Clock)), remote.Count == 1 ? remote[0].Replica : 0, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogDebug(e, "Read repair of CRDT key {Key} failed; anti-entropy will bring it", key);
            }
        }

        return (merged, read);
    }

    private CrdtPeer.CrdtPeerClient Client(PeerLink link) => new(_channelTo(link.Peer.ClientUrl));

    private DateTime Deadline() => DateTime.UtcNow.AddMilliseconds(Options.PeerCallTimeoutMs);

    private static string Describe(Exception e) => e is RpcException rpc ? $"{rpc.StatusCode}: {rpc.Status.Detail}" : $"{e.GetType().Name}: {e.Message}";

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _replica.DeltasAvailable -= Wake;
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stopping.Dispose();
        _wake.Dispose();
    }

    private sealed class PeerLink(CrdtPeerMember peer)
    {
        public CrdtPeerMember Peer { get; } = peer;

        /// <summary>The member's replica id, from its last answer (0 before the first): deltas that came from it are not sent back.</summary>
        public ulong PeerReplica { get; set; }

        /// <summary>Newest delta sequence this member has acknowledged (or received by repair).</summary>
        public long AckedSequence { get; set; }

        /// <summary>True at first contact and after any failure: compare digests before pushing deltas.</summary>
        public bool NeedsRepair { get; set; } = true;

        public long RepairedAtMs { get; set; }

        public bool Failing { get; set; }

        /// <summary>Whether a round with this member ever succeeded: until then, not reaching it is a member not up yet.</summary>
        public bool EverReached { get; set; }

        public Task Round { get; set; } = Task.CompletedTask;
    }
}
