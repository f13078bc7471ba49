using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    /// <summary>
    /// Range. On a single node every read is linearizable: writes are applied before they are
    /// acknowledged, so the state read here includes every acknowledged write.
    /// </summary>
    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfInvalid(RequestValidator.Validate(request, Options.Limits));
        var response = _host.Read(s => s.Range(request));
        FillHeader(response.Header);
        return Task.FromResult(response);
    }

    /// <summary>Put.</summary>
    public async Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(RequestValidator.Validate(request, Options.Limits));
        return await ProposeAsync(new Command { Put = request }, r => r.Put, r => r.Header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>DeleteRange.</summary>
    public async Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(RequestValidator.Validate(request, Options.Limits));
        return await ProposeAsync(new Command { DeleteRange = request }, r => r.DeleteRange, r => r.Header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Txn (one revision for all its writes; none if it writes nothing). A txn without writes is
    /// served from the state like a Range, as etcd does: on a single node that is linearizable.
    /// </summary>
    public async Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(RequestValidator.Validate(request, Options.Limits));
        if (StateMachine.IsReadOnlyTxn(request))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var read = _host.Read(s => s.ReadOnlyTxn(request));
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

    private static void ThrowIfInvalid(EtcdError? error)
    {
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }
}
