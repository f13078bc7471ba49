using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    /// <summary>
    /// Range. On a single node every read is linearizable: writes are applied before they are
    /// acknowledged, so the state read here includes every acknowledged write. In a cluster a
    /// linearizable read first waits for the leader's read index; a serializable one reads this
    /// member's state as it is (possibly stale).
    /// </summary>
    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default) =>
        RangeAsync(request, consistency: null, cancellationToken);

    /// <summary>
    /// The retained versions of <paramref name="key"/> on this member (serializable: this member's
    /// applied state), oldest first, at most the newest <paramref name="versionsMax"/>, with
    /// deletions; checked as a read of the key for the current identity. For the dashboard's key
    /// history, which etcd's API can only rebuild with a watch from the compact revision.
    /// </summary>
    public (IReadOnlyList<Protocol.Mvcc.Event> Versions, long Revision, long CompactRevision) KeyVersions(Google.Protobuf.ByteString key, int versionsMax)
    {
        ArgumentNullException.ThrowIfNull(key);
        CheckRead(key, Google.Protobuf.ByteString.Empty);
        return _host.Read(s => (s.KeyVersions(key, versionsMax), s.Revision, s.CompactRevision));
    }

    /// <summary>
    /// Range at a consistency level (null: etcd's, where the request's <c>serializable</c> flag
    /// chooses between serializable and linearizable). See <see cref="PrepareReadAsync"/>.
    /// </summary>
    public Task<RangeResponse> RangeAsync(RangeRequest request, Arbiter.Protocol.Consistency.ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfInvalid(RequestValidator.Validate(request, Options.Limits));
        Metrics.Range();
        var ready = PrepareReadAsync(consistency, request.Serializable, cancellationToken);
        if (!ready.IsCompletedSuccessfully)
        {
            return RangeAfterAsync(ready, request);
        }

        var response = _host.Read(s => ReadRangeChecked(s, request));
        FillHeader(response.Header);
        return Task.FromResult(response);
    }

    private async Task<RangeResponse> RangeAfterAsync(ValueTask ready, RangeRequest request)
    {
        await ready.ConfigureAwait(false);
        var response = _host.Read(s => ReadRangeChecked(s, request));
        FillHeader(response.Header);
        return response;
    }

    /// <summary>Put.</summary>
    public Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default)
    {
        // Not async itself: the hot path keeps one async frame (ProposeAsync), and a bad request
        // still comes back as a faulted task.
        ArgumentNullException.ThrowIfNull(request);
        var invalid = RequestValidator.Validate(request, Options.Limits);
        if (invalid is not null)
        {
            return Task.FromException<PutResponse>(new EtcdException(invalid));
        }

        Metrics.Put();
        return ProposeAsync(new Command { Put = request }, r => r.Put, r => r.Header, cancellationToken);
    }

    /// <summary>DeleteRange.</summary>
    public Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var invalid = RequestValidator.Validate(request, Options.Limits);
        if (invalid is not null)
        {
            return Task.FromException<DeleteRangeResponse>(new EtcdException(invalid));
        }

        Metrics.Delete();
        return ProposeAsync(new Command { DeleteRange = request }, r => r.DeleteRange, r => r.Header, cancellationToken);
    }

    /// <summary>
    /// Txn (one revision for all its writes; none if it writes nothing). A txn without writes is
    /// served from the state like a Range, as etcd does: on a single node that is linearizable.
    /// </summary>
    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default) =>
        TxnAsync(request, consistency: null, cancellationToken);

    /// <summary>
    /// Txn; a read-only one is served at <paramref name="consistency"/> (null: etcd's choice by the
    /// ranges' <c>serializable</c> flags). A txn that writes goes through the log whatever the level.
    /// </summary>
    public async Task<TxnResponse> TxnAsync(TxnRequest request, Arbiter.Protocol.Consistency.ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(RequestValidator.Validate(request, Options.Limits));
        Metrics.Txn();
        if (StateMachine.IsReadOnlyTxn(request))
        {
            cancellationToken.ThrowIfCancellationRequested();
            await PrepareReadAsync(consistency, IsSerializableTxn(request), cancellationToken).ConfigureAwait(false);

            var read = _host.Read(s => ReadTxnChecked(s, request));
            FillHeader(read.Header);
            return read;
        }

        return await ProposeAsync(new Command { Txn = request }, r => r.Txn, r => r.Header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Compact the history up to a revision (a command like any other write).</summary>
    public async Task<CompactionResponse> CompactAsync(CompactionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return await ProposeAsync(new Command { Compaction = request }, r => r.Compaction, r => r.Header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A read-only txn is served like a serializable range only when every range in it asks for that.</summary>
    private static bool IsSerializableTxn(TxnRequest request)
    {
        return request.Success.Concat(request.Failure).All(op => op.RequestCase switch
        {
            RequestOp.RequestOneofCase.RequestRange => op.RequestRange.Serializable,
            RequestOp.RequestOneofCase.RequestTxn => IsSerializableTxn(op.RequestTxn),
            _ => true,
        }) && request.Compare.Count == 0;
    }

    private static void ThrowIfInvalid(EtcdError? error)
    {
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }
}
