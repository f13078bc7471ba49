using Arbiter.Core;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    /// <summary>Opens a transaction bound to a lease (arbiter.v1 Transactions.Begin).</summary>
    public Task<BeginResponse> TxnBeginAsync(BeginRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ProposeAsync(new Command { TxnBegin = request }, r => r.TxnBegin, r => r.Header, cancellationToken);
    }

    /// <summary>
    /// Takes a lock and returns once it is granted. A request that has to queue is waited for on
    /// this member's applied state (the queue is replicated, so any member can wait, and a call
    /// repeated after a leader change re-attaches to the same place in the queue). Cancelling the
    /// call does not withdraw the queued request: it stays until granted, timed out, or its
    /// transaction ends (roll back to withdraw it).
    /// </summary>
    public async Task<LockResponse> TxnLockAsync(LockRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var result = (await ProposeAsync(new Command { TxnLock = request }, cancellationToken).ConfigureAwait(false)).TxnLock;
        var token = result.Granted ? result.FencingToken : await WaitForGrantAsync(request.TxnId, result.Sequence, cancellationToken).ConfigureAwait(false);
        return new LockResponse { Header = NewHeader(Revision), FencingToken = token };
    }

    /// <summary>Commits a transaction: its writes in one revision, then every lock released.</summary>
    public Task<CommitResponse> TxnCommitAsync(CommitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ProposeAsync(new Command { TxnCommit = request }, r => r.TxnCommit, r => r.Header, cancellationToken);
    }

    /// <summary>Rolls a transaction back (idempotent for one that already ended).</summary>
    public Task<AbortResponse> TxnAbortAsync(AbortRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ProposeAsync(new Command { TxnAbort = request }, r => r.TxnAbort, r => r.Header, cancellationToken);
    }

    /// <summary>Optimistic commit validated against the MVCC history (arbiter.v1 Transactions.OptimisticCommit).</summary>
    public Task<OptimisticCommitResponse> TxnOptimisticCommitAsync(OptimisticCommitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ProposeAsync(new Command { TxnOptimisticCommit = request }, r => r.TxnOptimisticCommit, r => r.Header, cancellationToken);
    }

    /// <summary>Open transactions, locks and waiters (who waits on whom), and counters, as of a linearizable read.</summary>
    public async Task<TransactionStatusResponse> TxnStatusAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await _log.WaitLinearizableAsync(cancellationToken).ConfigureAwait(false);
        var nowMs = Options.Clock.NowMs;
        var response = _host.Read(s => s.TransactionStatus(nowMs));
        FillHeader(response.Header);
        return response;
    }

    private async Task<long> WaitForGrantAsync(long txnId, long sequence, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        try
        {
            while (true)
            {
                var changed = _host.TransactionsChanged;
                if (_host.Read(s => s.LockWaitState(txnId, sequence)) is { } token)
                {
                    return token;
                }

                await changed.WaitAsync(linked.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new EtcdException(EtcdError.Stopped);
        }
    }
}
