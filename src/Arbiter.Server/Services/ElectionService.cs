using System.Text;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol;
using Arbiter.Protocol.Election;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Arbiter.Server.Concurrency;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>
/// v3electionpb.Election: etcd's election recipe run server-side. Candidates queue under
/// <c>name/&lt;lease hex&gt;</c>; the earliest created key is the leader.
/// </summary>
public sealed class ElectionService(NodeRecipes recipes, ServerShutdown shutdown) : Election.ElectionBase
{
    private static readonly EtcdError MissingLeaderKey = new(ErrorStatusCode.Unknown, "\"leader\" field must be provided");
    private static readonly EtcdError NotLeader = new(ErrorStatusCode.Unknown, "election: not leader");
    private static readonly EtcdError NoLeader = new(ErrorStatusCode.Unknown, "election: no leader");

    private ArbiterNode Node => recipes.Node;

    /// <inheritdoc />
    public override Task<CampaignResponse> Campaign(CampaignRequest request, ServerCallContext context) =>
        RecipeErrors.AsClientErrorsAsync(CampaignCoreAsync(request, context));

    private async Task<CampaignResponse> CampaignCoreAsync(CampaignRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var lifetime = shutdown.Link(context);
        var token = lifetime.Token;
        var prefix = Prefix(request.Name);
        var key = ByteString.CopyFrom([.. prefix.Span, .. Encoding.ASCII.GetBytes(KeyRanges.LeaseHex(request.Lease))]);

        var txn = new TxnRequest();
        txn.Compare.Add(CreatedAt(key, 0));
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = request.Value, Lease = request.Lease } });
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = key } });
        var response = await Node.TxnAsync(txn, token).ConfigureAwait(false);
        var revision = response.Header.Revision;
        if (!response.Succeeded)
        {
            var existing = response.Responses[0].ResponseRange.Kvs[0];
            revision = existing.CreateRevision;
            if (existing.Value != request.Value)
            {
                await ProclaimAsync(key, revision, request.Lease, request.Value, token).ConfigureAwait(false);
            }
        }

        try
        {
            await recipes.WaitDeletesAsync(prefix, revision - 1, token).ConfigureAwait(false);
            if (!await recipes.StillOwnsAsync(key, revision, token).ConfigureAwait(false))
            {
                throw new EtcdException(EtcdError.LeaseNotFound);
            }
        }
        catch (OperationCanceledException)
        {
            await ResignAsync(key, revision, CancellationToken.None).ConfigureAwait(false);
            shutdown.ThrowIfStopping();
            throw;
        }

        return new CampaignResponse
        {
            Header = response.Header,
            Leader = new LeaderKey { Name = request.Name, Key = key, Rev = revision, Lease = request.Lease },
        };
    }

    /// <inheritdoc />
    public override Task<ProclaimResponse> Proclaim(ProclaimRequest request, ServerCallContext context) =>
        RecipeErrors.AsClientErrorsAsync(ProclaimCoreAsync(request, context));

    private async Task<ProclaimResponse> ProclaimCoreAsync(ProclaimRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var leader = request.Leader ?? throw new EtcdException(MissingLeaderKey);
        var header = await ProclaimAsync(leader.Key, leader.Rev, leader.Lease, request.Value, context.CancellationToken).ConfigureAwait(false);
        return new ProclaimResponse { Header = header };
    }

    /// <inheritdoc />
    public override Task<ResignResponse> Resign(ResignRequest request, ServerCallContext context) =>
        RecipeErrors.AsClientErrorsAsync(ResignCoreAsync(request, context));

    private async Task<ResignResponse> ResignCoreAsync(ResignRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var leader = request.Leader ?? throw new EtcdException(MissingLeaderKey);
        var header = await ResignAsync(leader.Key, leader.Rev, context.CancellationToken).ConfigureAwait(false);
        return new ResignResponse { Header = header };
    }

    /// <inheritdoc />
    public override Task<LeaderResponse> Leader(LeaderRequest request, ServerCallContext context) =>
        RecipeErrors.AsClientErrorsAsync(LeaderCoreAsync(request, context));

    private async Task<LeaderResponse> LeaderCoreAsync(LeaderRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var response = await Node.RangeAsync(LockService.FirstCreated(Prefix(request.Name)), context.CancellationToken).ConfigureAwait(false);
        if (response.Kvs.Count == 0)
        {
            throw new EtcdException(NoLeader);
        }

        return new LeaderResponse { Header = response.Header, Kv = response.Kvs[0] };
    }

    /// <summary>Streams the leader, then every change of its value, then the next leader, and so on.</summary>
    public override async Task Observe(LeaderRequest request, IServerStreamWriter<LeaderResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(responseStream);
        using var lifetime = shutdown.Link(context);
        var token = lifetime.Token;
        var prefix = Prefix(request.Name);
        try
        {
            while (!token.IsCancellationRequested)
            {
                var current = await Node.RangeAsync(LockService.FirstCreated(prefix), token).ConfigureAwait(false);
                KeyValue leader;
                ResponseHeader header;
                if (current.Kvs.Count == 0)
                {
                    (header, leader) = await WaitFirstPutAsync(prefix, current.Header.Revision, token).ConfigureAwait(false);
                }
                else
                {
                    (header, leader) = (current.Header, current.Kvs[0]);
                }

                await responseStream.WriteAsync(new LeaderResponse { Header = header, Kv = leader }, token).ConfigureAwait(false);
                await FollowLeaderAsync(leader.Key, header.Revision, responseStream, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            shutdown.ThrowIfStopping();
        }
    }

    private async Task<(ResponseHeader Header, KeyValue Kv)> WaitFirstPutAsync(ByteString prefix, long revision, CancellationToken token)
    {
        var stream = Node.OpenWatchStream();
        await using (stream.ConfigureAwait(false))
        {
            stream.Create(new WatchCreateRequest { Key = prefix, RangeEnd = KeyRanges.PrefixEnd(prefix), StartRevision = revision });
            await foreach (var response in stream.ReadAllAsync(token).ConfigureAwait(false))
            {
                foreach (var e in response.Events)
                {
                    if (e.Type == Event.Types.EventType.Put)
                    {
                        var header = response.Header.Clone();
                        header.Revision = e.Kv.ModRevision;
                        return (header, e.Kv);
                    }
                }
            }
        }

        throw new OperationCanceledException(token);
    }

    private async Task FollowLeaderAsync(ByteString key, long revision, IServerStreamWriter<LeaderResponse> responseStream, CancellationToken token)
    {
        var stream = Node.OpenWatchStream();
        await using (stream.ConfigureAwait(false))
        {
            stream.Create(new WatchCreateRequest { Key = key, StartRevision = revision + 1 });
            await foreach (var response in stream.ReadAllAsync(token).ConfigureAwait(false))
            {
                if (response.Canceled)
                {
                    return;
                }

                foreach (var e in response.Events)
                {
                    if (e.Type == Event.Types.EventType.Delete)
                    {
                        return;
                    }

                    await responseStream.WriteAsync(new LeaderResponse { Header = response.Header, Kv = e.Kv }, token).ConfigureAwait(false);
                }
            }
        }
    }

    private async Task<ResponseHeader> ProclaimAsync(ByteString key, long revision, long lease, ByteString value, CancellationToken token)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(CreatedAt(key, revision));
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = value, Lease = lease } });
        var response = await Node.TxnAsync(txn, token).ConfigureAwait(false);
        return response.Succeeded ? response.Header : throw new EtcdException(NotLeader);
    }

    private async Task<ResponseHeader> ResignAsync(ByteString key, long revision, CancellationToken token)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(CreatedAt(key, revision));
        txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
        var response = await Node.TxnAsync(txn, token).ConfigureAwait(false);
        return response.Header;
    }

    private static ByteString Prefix(ByteString name) => ByteString.CopyFrom([.. name.Span, (byte)'/']);

    private static Compare CreatedAt(ByteString key, long revision) => new()
    {
        Key = key,
        Target = Compare.Types.CompareTarget.Create,
        Result = Compare.Types.CompareResult.Equal,
        CreateRevision = revision,
    };
}
