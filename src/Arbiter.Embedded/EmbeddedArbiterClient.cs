using System.Runtime.CompilerServices;
using Arbiter.Client;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Node.Watch;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Embedded;

/// <summary>
/// <see cref="IArbiterClient"/> over an in-process <see cref="ArbiterNode"/>: no network hop, same
/// semantics and the same exceptions as over gRPC.
/// </summary>
public sealed class EmbeddedArbiterClient : IArbiterClient, ITransactionsClient, ICrdtClient
{
    private readonly ArbiterNode _node;
    private readonly bool _ownsNode;

    /// <summary>Wraps <paramref name="node"/>; when <paramref name="ownsNode"/> the node is stopped with the client.</summary>
    public EmbeddedArbiterClient(ArbiterNode node, bool ownsNode = false)
    {
        _node = node ?? throw new ArgumentNullException(nameof(node));
        _ownsNode = ownsNode;
    }

    /// <summary>Starts an embedded node and returns a client that owns it.</summary>
    public static async Task<EmbeddedArbiterClient> StartAsync(NodeOptions options, CancellationToken cancellationToken = default)
    {
        var node = await ArbiterNode.StartAsync(options, cancellationToken: cancellationToken).ConfigureAwait(false);
        return new EmbeddedArbiterClient(node, ownsNode: true);
    }

    /// <summary>The node this client talks to.</summary>
    public ArbiterNode Node => _node;

    /// <inheritdoc />
    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.RangeAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<RangeResponse> RangeAsync(RangeRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default) =>
        Call(() => _node.RangeAsync(request, consistency, cancellationToken));

    /// <inheritdoc />
    public Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.PutAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.DeleteRangeAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<TxnResponse> TxnAsync(TxnRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnAsync(request, consistency, cancellationToken));

    /// <inheritdoc />
    public Task<CompactionResponse> CompactAsync(CompactionRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.CompactAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<LeaseGrantResponse> LeaseGrantAsync(LeaseGrantRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.LeaseGrantAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<LeaseRevokeResponse> LeaseRevokeAsync(LeaseRevokeRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.LeaseRevokeAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<LeaseKeepAliveResponse> LeaseKeepAliveOnceAsync(LeaseKeepAliveRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.LeaseKeepAliveAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(LeaseTimeToLiveRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.LeaseTimeToLiveAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<LeaseLeasesResponse> LeaseLeasesAsync(CancellationToken cancellationToken = default) =>
        Call(() => _node.LeaseLeasesAsync(new LeaseLeasesRequest(), cancellationToken));

    /// <inheritdoc />
    public Task<StatusResponse> StatusAsync(CancellationToken cancellationToken = default) =>
        Call(() => _node.StatusAsync(new StatusRequest(), cancellationToken));

    /// <inheritdoc />
    IArbiterClient ITransactionsClient.KvForTransactions => this;

    /// <inheritdoc />
    public Task<Protocol.Transactions.BeginResponse> TxnBeginAsync(Protocol.Transactions.BeginRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnBeginAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<Protocol.Transactions.LockResponse> TxnLockAsync(Protocol.Transactions.LockRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnLockAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<Protocol.Transactions.CommitResponse> TxnCommitAsync(Protocol.Transactions.CommitRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnCommitAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<Protocol.Transactions.AbortResponse> TxnAbortAsync(Protocol.Transactions.AbortRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnAbortAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<Protocol.Transactions.OptimisticCommitResponse> TxnOptimisticCommitAsync(Protocol.Transactions.OptimisticCommitRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnOptimisticCommitAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<Protocol.Transactions.TransactionStatusResponse> TxnStatusAsync(CancellationToken cancellationToken = default) =>
        Call(() => _node.TxnStatusAsync(cancellationToken));

    /// <inheritdoc />
    public Task<Protocol.Crdt.CrdtUpdateResponse> CrdtUpdateAsync(Protocol.Crdt.CrdtUpdateRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.CrdtUpdateAsync(request, cancellationToken));

    /// <inheritdoc />
    public Task<Protocol.Crdt.CrdtGetResponse> CrdtGetAsync(Protocol.Crdt.CrdtGetRequest request, CancellationToken cancellationToken = default) =>
        Call(() => _node.CrdtGetAsync(request, cancellationToken));

    /// <inheritdoc />
    public async IAsyncEnumerable<Protocol.Crdt.CrdtWatchResponse> CrdtWatchAsync(Protocol.Crdt.CrdtWatchRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var changes = _node.CrdtWatchAsync(request.Key, cancellationToken).GetAsyncEnumerator(cancellationToken);
        await using (changes.ConfigureAwait(false))
        {
            // Call maps the node's errors as for every other call (a bad key: InvalidArgument).
            while ((await Call(async () => new Google.Protobuf.WellKnownTypes.BoolValue { Value = await changes.MoveNextAsync().ConfigureAwait(false) }).ConfigureAwait(false)).Value)
            {
                yield return changes.Current.Clone();
            }
        }
    }

    /// <inheritdoc />
    public IWatchSession OpenWatch() => new EmbeddedWatchSession(_node.OpenWatchStream(), null);

    /// <inheritdoc />
    public IWatchSession OpenWatch(ReadConsistency? consistency) =>
        new EmbeddedWatchSession(_node.OpenWatchStream(), consistency is null ? null : ct => _node.PrepareReadAsync(consistency, serializableFlag: false, ct));

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_ownsNode)
        {
            await _node.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Maps node errors to the RpcException a gRPC client would see, and hands out a deep copy:
    /// the node's responses share key-value objects with the store, which callers must not mutate.
    /// </summary>
    private static async Task<T> Call<T>(Func<Task<T>> call)
        where T : Google.Protobuf.IDeepCloneable<T>
    {
        try
        {
            var response = await call().ConfigureAwait(false);
            return response.Clone();
        }
        catch (EtcdException e)
        {
            var status = new Status((StatusCode)(int)e.Error.StatusCode, e.Error.Message);
            throw e.Error.Transaction is { } detail
                ? new RpcException(status, new Metadata { { TransactionErrorMetadata.Trailer, Google.Protobuf.MessageExtensions.ToByteArray(detail) } })
                : new RpcException(status);
        }
        catch (ConsistencyException e)
        {
            throw ReadConsistencyException.From(e);
        }
    }

    private sealed class EmbeddedWatchSession(WatchStream stream, Func<CancellationToken, ValueTask>? prepare) : IWatchSession
    {
        private Func<CancellationToken, ValueTask>? _prepare = prepare;

        public async ValueTask CreateAsync(WatchCreateRequest request, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (Interlocked.Exchange(ref _prepare, null) is { } ready)
            {
                // As over gRPC: the stream starts once the member may serve the level.
                try
                {
                    await ready(cancellationToken).ConfigureAwait(false);
                }
                catch (ConsistencyException e)
                {
                    throw ReadConsistencyException.From(e);
                }
                catch (EtcdException e)
                {
                    throw new RpcException(new Status((StatusCode)(int)e.Error.StatusCode, e.Error.Message));
                }
            }

            stream.Create(request);
        }

        public ValueTask CancelAsync(long watchId, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            stream.Cancel(watchId);
            return ValueTask.CompletedTask;
        }

        public ValueTask RequestProgressAsync(CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            stream.RequestProgress();
            return ValueTask.CompletedTask;
        }

        public async IAsyncEnumerable<WatchResponse> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await foreach (var response in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // Hand out copies: the node shares event objects between watchers.
                yield return response.Clone();
            }
        }

        public ValueTask DisposeAsync() => stream.DisposeAsync();
    }
}
