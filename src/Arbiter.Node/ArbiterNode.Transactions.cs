using Arbiter.Core;
using Arbiter.Core.Transactions;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    /// <summary>
    /// Opens a transaction bound to a lease (arbiter.v1 Transactions.Begin). With lock targets the
    /// transaction takes them in the same command and this returns once every one is granted (as
    /// <see cref="TxnLockAsync"/> does); if a lock then fails (lock timeout, deadlock victim) or the
    /// call is cancelled, the transaction is rolled back before the error goes out, so a failed
    /// Begin leaves no transaction holding locks.
    /// </summary>
    public async Task<BeginResponse> TxnBeginAsync(BeginRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(LockTargets.Validate(request, Options.Limits));
        if (request.Locks.Count == 0)
        {
            return await ProposeAsync(new Command { TxnBegin = request }, r => r.TxnBegin, r => r.Header, cancellationToken).ConfigureAwait(false);
        }

        var keysToRead = LockedKeysToRead(request.ReadLockedKeys, request.Locks);
        var result = (await ProposeAsync(new Command { TxnBegin = request }, cancellationToken).ConfigureAwait(false)).TxnBeginLocked;
        var begin = result.Begin;
        FillHeader(begin.Header);
        if (result.Lock.Granted)
        {
            begin.LockedKeysRead = ReadLockedKeys(keysToRead, begin.Kvs, begin.Header);
            return begin;
        }

        try
        {
            var tokens = await TakeRestAsync(begin.TxnId, request.Locks, request.LockWaitPolicy, request.LockWaitTimeoutMs, result.Lock, cancellationToken).ConfigureAwait(false);
            begin.FencingTokens.AddRange(tokens);
            begin.Header = NewHeader(Revision);
            begin.LockedKeysRead = ReadLockedKeys(keysToRead, begin.Kvs, begin.Header);
            return begin;
        }
        catch (Exception)
        {
            await RollBackQuietlyAsync(begin.TxnId).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Takes one lock or several (<see cref="LockRequest.More"/>) and returns once every one is
    /// granted, with a fencing token per target. Targets are proposed in one command; where one has
    /// to queue it is waited for on this member's applied state (the queue is replicated, so any
    /// member can wait, and a call repeated after a leader change re-attaches to the same place in
    /// the queue, the targets already granted answered as held), then the remaining targets are
    /// proposed as the next command. Cancelling the call does not withdraw a queued request: it
    /// stays until granted, timed out, or its transaction ends (roll back to withdraw it).
    /// </summary>
    public async Task<LockResponse> TxnLockAsync(LockRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ThrowIfInvalid(LockTargets.Validate(request, Options.Limits));
        var targets = LockTargets.Of(request);
        var keysToRead = LockedKeysToRead(request.ReadLockedKeys, targets);
        var result = (await ProposeAsync(new Command { TxnLock = request }, cancellationToken).ConfigureAwait(false)).TxnLock;
        var tokens = result.Granted
            ? [.. result.FencingTokens]
            : await TakeRestAsync(request.TxnId, targets, request.WaitPolicy, request.WaitTimeoutMs, result, cancellationToken).ConfigureAwait(false);
        var response = new LockResponse { Header = NewHeader(Revision), FencingToken = tokens[0] };
        response.FencingTokens.AddRange(tokens);
        response.LockedKeysRead = ReadLockedKeys(keysToRead, response.Kvs, response.Header);
        return response;
    }

    /// <summary>
    /// The distinct single-key targets whose values the caller asked for; null when not asked, or
    /// when the caller may not read one of them (an exclusive lock needs only write permission):
    /// then nothing is read ahead (<c>locked_keys_read</c> stays false) and the caller's own reads
    /// are checked, and refused, as before. Decided before anything is proposed.
    /// </summary>
    private List<Google.Protobuf.ByteString>? LockedKeysToRead(bool requested, IEnumerable<LockTarget> targets)
    {
        if (!requested)
        {
            return null;
        }

        var keys = targets.Where(t => t.RangeEnd.IsEmpty).Select(t => t.Key).Distinct().ToList();
        return MayReadAll(keys) ? keys : null;
    }

    /// <summary>
    /// Reads <paramref name="keys"/> (null: nothing asked) in one pass over this member's applied
    /// state, which already includes the caller's last grant (the proposal or the grant wait returned
    /// only once this member applied it), and sets the header's revision to the revision read at.
    /// </summary>
    private bool ReadLockedKeys(List<Google.Protobuf.ByteString>? keys, Google.Protobuf.Collections.RepeatedField<Arbiter.Protocol.Mvcc.KeyValue> into, Arbiter.Protocol.Etcd.ResponseHeader header)
    {
        if (keys is null)
        {
            return false;
        }

        header.Revision = _host.Read(s =>
        {
            foreach (var key in keys)
            {
                into.AddRange(s.Range(new Arbiter.Protocol.Etcd.RangeRequest { Key = key }).Kvs);
            }

            return s.Revision;
        });
        return true;
    }

    /// <summary>
    /// After a lock command that queued a target: waits for its grant, then proposes the targets
    /// after it as the next Lock command, until every target is granted. Returns every token in
    /// target order.
    /// </summary>
    private async Task<List<long>> TakeRestAsync(long txnId, IReadOnlyList<LockTarget> targets, WaitPolicy waitPolicy, long waitTimeoutMs, LockResult result, CancellationToken cancellationToken)
    {
        var tokens = new List<long>(targets.Count);
        while (true)
        {
            tokens.AddRange(result.FencingTokens);
            if (result.Granted)
            {
                return tokens;
            }

            tokens.Add(await WaitForGrantAsync(txnId, result.Sequence, cancellationToken).ConfigureAwait(false));
            if (tokens.Count == targets.Count)
            {
                return tokens;
            }

            var first = targets[tokens.Count];
            var rest = new LockRequest { TxnId = txnId, Key = first.Key, RangeEnd = first.RangeEnd, Mode = first.Mode, WaitPolicy = waitPolicy, WaitTimeoutMs = waitTimeoutMs };
            rest.More.AddRange(targets.Skip(tokens.Count + 1));
            result = (await ProposeAsync(new Command { TxnLock = rest }, cancellationToken).ConfigureAwait(false)).TxnLock;
        }
    }

    /// <summary>Rolls a transaction back after its Begin failed to take its locks (best effort: its lease or time limit ends it otherwise).</summary>
    private async Task RollBackQuietlyAsync(long txnId)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await ProposeAsync(new Command { TxnAbort = new AbortRequest { TxnId = txnId } }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is EtcdException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // Already ended (a deadlock victim is aborted by the command that chose it), or this member cannot propose now.
        }
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
