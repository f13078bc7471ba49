using Arbiter.Core;
using Arbiter.Crdt;
using Arbiter.Node.Crdt;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Internal;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    private CrdtReplica? _crdt;
    private CrdtAntiEntropy? _antiEntropy;

    /// <summary>Anti-entropy bytes by kind and local updates, for the metrics.</summary>
    internal CrdtGossipCounters CrdtGossip { get; } = new();

    /// <summary>Per peer member, the CRDT deltas it has not acknowledged yet (empty on a single node).</summary>
    internal IEnumerable<(ulong MemberId, long DeltasBehind)> CrdtPeerLag() => _antiEntropy?.PeerLag() ?? [];

    private CrdtReplica CrdtReplica => _crdt ?? throw new EtcdException(EtcdError.Stopped);

    /// <summary>This member's CRDT replica id (changes when its data directory is wiped).</summary>
    public ulong CrdtReplicaId => CrdtReplica.Id.Value;

    private void StartCrdt(ILoggerFactory loggerFactory)
    {
        var directory = Options.DataDirectory is null ? null : Path.Combine(Options.DataDirectory, "member", "crdt");
        var logger = loggerFactory.CreateLogger("Arbiter.Crdt");
        _crdt = CrdtReplica.Open(directory, Options.Crdt, Options.WallClock, Options.FsyncEnabled, logger);
        if (_raft is { } raft)
        {
            _antiEntropy = new CrdtAntiEntropy(_crdt, ListCrdtPeersAsync, raft.ChannelTo, CrdtGossip, logger);
            StartCrdtMembership(logger);
        }
    }

    private async Task<IReadOnlyList<CrdtPeerMember>> ListCrdtPeersAsync(CancellationToken cancellationToken)
    {
        var members = await _raft!.ListMembersAsync(cancellationToken).ConfigureAwait(false);
        return members
            .Where(m => m.ID != MemberId)
            .Select(m => (m.ID, Url: _raft.PeerClientUrl(string.Join(',', m.ClientURLs))))
            .Where(m => m.Url is not null)
            .Select(m => new CrdtPeerMember(m.ID, m.Url!))
            .ToList();
    }

    private int CrdtReplicasRequired(bool all, bool majority)
    {
        if (_antiEntropy is null || !(all || majority))
        {
            return 1;
        }

        // Every member of the Raft configuration counts, reachable or not: counting only the peers
        // whose client URL is known let a member cut off from the rest (their metadata unreadable)
        // see itself as the whole cluster and acknowledge a majority write alone.
        var members = Math.Max(1, _raft!.ConfiguredMemberCount);
        return all ? members : (members / 2) + 1;
    }

    private TimeSpan CrdtTimeout(uint requestedMs)
    {
        var timeoutMs = requestedMs == 0 ? Options.Crdt.DefaultTimeoutMs : (int)Math.Min(requestedMs, (uint)Options.Crdt.TimeoutMsMax);
        return TimeSpan.FromMilliseconds(timeoutMs);
    }

    /// <summary>
    /// Applies a CRDT operation on this member (durable here before it returns), then waits for as
    /// many replicas as the request's write level asks. A timeout fails the call without rolling
    /// anything back, and says so.
    /// </summary>
    public async Task<CrdtUpdateResponse> CrdtUpdateAsync(CrdtUpdateRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Operation is null || request.Operation.OpCase == CrdtOperation.OpOneofCase.None)
        {
            throw new EtcdException(new EtcdError(ErrorStatusCode.InvalidArgument, "arbiter: crdt: the request has no operation"));
        }

        if (!Enum.IsDefined(request.Write))
        {
            throw new EtcdException(new EtcdError(ErrorStatusCode.InvalidArgument, $"arbiter: crdt: unknown write level {(int)request.Write}"));
        }

        var replica = CrdtReplica;
        var causalToken = request.CausalToken is null ? (Hlc?)null : Hlc.FromTimestamp(request.CausalToken);
        var (state, delta, stamp) = await replica.UpdateAsync(request.Key, request.Type, request.Operation, causalToken, cancellationToken).ConfigureAwait(false);
        CrdtGossip.Update();
        var required = CrdtReplicasRequired(request.Write == CrdtWriteLevel.WriteAll, request.Write == CrdtWriteLevel.WriteMajority);
        var acknowledged = 1;
        if (required > 1)
        {
            acknowledged = await _antiEntropy!.ReplicateAsync(request.Key, delta, required, CrdtTimeout(request.TimeoutMs), cancellationToken).ConfigureAwait(false);
            if (acknowledged < required)
            {
                throw new EtcdException(new EtcdError(
                    ErrorStatusCode.DeadlineExceeded,
                    $"arbiter: crdt: the update reached {acknowledged} of the {required} replicas asked for before the timeout; it stays applied on this member and keeps spreading (nothing is rolled back)"));
            }
        }

        return new CrdtUpdateResponse
        {
            Value = state.ToValue(),
            ReplicasAcknowledged = (uint)acknowledged,
            CausalToken = stamp.ToTimestamp(),
            ReplicaId = replica.Id.Value,
        };
    }

    /// <summary>Reads a CRDT key from this member, or merged over as many replicas as the read level asks.</summary>
    public async Task<CrdtGetResponse> CrdtGetAsync(CrdtGetRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!Enum.IsDefined(request.Read))
        {
            throw new EtcdException(new EtcdError(ErrorStatusCode.InvalidArgument, $"arbiter: crdt: unknown read level {(int)request.Read}"));
        }

        var replica = CrdtReplica;
        var state = replica.Get(request.Key);
        var read = 1;
        var required = CrdtReplicasRequired(request.Read == CrdtReadLevel.ReadAll, request.Read == CrdtReadLevel.ReadMajority);
        if (required > 1)
        {
            (state, read) = await _antiEntropy!.ReadAsync(request.Key, state, required, CrdtTimeout(request.TimeoutMs), cancellationToken).ConfigureAwait(false);
            if (read < required)
            {
                throw new EtcdException(new EtcdError(
                    ErrorStatusCode.DeadlineExceeded,
                    $"arbiter: crdt: the read reached {read} of the {required} replicas asked for before the timeout"));
            }
        }

        // The replica's clock has observed every stamp in every state it holds, so "now" orders a
        // later write after whatever this read returned.
        return new CrdtGetResponse { Value = state?.ToValue() ?? new CrdtValue(), ReplicasRead = (uint)read, CausalToken = replica.Now().ToTimestamp() };
    }

    /// <summary>A CRDT key's merged value on this member each time it changes, starting with the current one.</summary>
    public async IAsyncEnumerable<CrdtWatchResponse> CrdtWatchAsync(string key, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var replica = CrdtReplica;
        await foreach (var state in replica.WatchAsync(key, cancellationToken).ConfigureAwait(false))
        {
            yield return new CrdtWatchResponse { Value = state?.ToValue() ?? new CrdtValue(), CausalToken = replica.Now().ToTimestamp() };
        }
    }

    /// <summary>Another member's deltas: joined and durable here before the answer.</summary>
    public async Task<CrdtDeltaAck> CrdtPushDeltasAsync(CrdtDeltaBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var replica = CrdtReplica;
        await replica.JoinRemoteAsync(batch.Deltas, Hlc.FromTimestamp(batch.SenderClock ?? new HlcTimestamp()), batch.SenderReplica, cancellationToken).ConfigureAwait(false);
        return new CrdtDeltaAck { LastSequence = batch.LastSequence, Clock = replica.Now().ToTimestamp(), Replica = replica.Id.Value };
    }

    /// <summary>Another member's digest: answered with this replica's differing states and the keys it lacks.</summary>
    public CrdtRepairResponse CrdtRepair(CrdtDigest digest)
    {
        ArgumentNullException.ThrowIfNull(digest);
        var replica = CrdtReplica;
        var (differing, wanted) = replica.Compare(digest.Keys);
        var response = new CrdtRepairResponse { Clock = replica.Now().ToTimestamp(), Replica = replica.Id.Value };
        response.States.AddRange(differing);
        response.Wanted.AddRange(wanted);
        return response;
    }

    /// <summary>One key's state on this replica, for another member's majority or all read.</summary>
    public CrdtReadStateResponse CrdtReadState(CrdtReadStateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var replica = CrdtReplica;
        var state = replica.Get(request.Key);
        return new CrdtReadStateResponse
        {
            State = state is null ? Google.Protobuf.ByteString.Empty : Google.Protobuf.ByteString.CopyFrom(state.ToBytes()),
            Clock = replica.Now().ToTimestamp(),
            Replica = replica.Id.Value,
        };
    }

    private async Task StopCrdtAsync()
    {
        await _crdtMembership.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_antiEntropy is not null)
        {
            await _antiEntropy.DisposeAsync().ConfigureAwait(false);
        }

        if (_crdt is not null)
        {
            await _crdt.DisposeAsync().ConfigureAwait(false);
        }
    }
}
