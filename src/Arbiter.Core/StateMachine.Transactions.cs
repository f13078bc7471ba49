using Arbiter.Core.Transactions;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    private LockTable? _lockTable;

    /// <summary>The lock table (created on first use so that the constructor stays cheap).</summary>
    private LockTable Locks => _lockTable ??= new LockTable(Limits, () => _revision);

    /// <summary>The earliest transaction time limit or lock-wait timeout (proposer's clock, ms), or null.</summary>
    public long? NextTransactionDeadlineMs => _lockTable?.NextDeadlineMs;

    /// <summary>The last transaction id, lock request sequence and fencing token handed out (all 0 before the first Begin).</summary>
    public (long TxnId, long Sequence, long FencingToken) LastTransactionIdentifiers => _lockTable?.LastIdentifiers ?? default;

    /// <summary>Deadlocks broken so far (each by aborting a victim).</summary>
    public long TransactionDeadlocks => _lockTable?.Counters.Deadlocks ?? 0;

    /// <summary>Open transactions, every lock held or waited for (with who waits on whom) and the counters.</summary>
    public TransactionStatusResponse TransactionStatus()
    {
        var response = Locks.Status();
        response.Header = Header(_revision);
        return response;
    }

    /// <summary>
    /// <see cref="TransactionStatus()"/> with each transaction's open time and what is left of its
    /// time limit and lease, measured at <paramref name="nowMs"/> (the reader's monotonic clock; a
    /// read, never a command, so the core stays deterministic).
    /// </summary>
    public TransactionStatusResponse TransactionStatus(long nowMs)
    {
        var response = Locks.Status(nowMs, lease => _leases.TryGetValue(lease, out var l) ? l.DeadlineMs : null);
        response.Header = Header(_revision);
        return response;
    }

    /// <summary>
    /// Open transactions, locks held, lock requests waiting, and the transaction counters, for
    /// metrics: cheaper than <see cref="TransactionStatus()"/> (no copy of the lock table).
    /// </summary>
    public (int OpenTransactions, int LocksHeld, int LocksWaiting, TransactionCounters Counters) TransactionSummary()
    {
        if (_lockTable is null)
        {
            return (0, 0, 0, new TransactionCounters());
        }

        var (held, waiting) = _lockTable.CountLocks();
        return (_lockTable.OpenCount, held, waiting, _lockTable.Counters.Clone());
    }

    /// <summary>The wait-for graph: each waiting transaction and the transactions it waits for.</summary>
    public IReadOnlyDictionary<long, long[]> WaitForGraph() => Locks.WaitForGraph();

    /// <summary>
    /// Where a queued lock request (a <see cref="LockResult"/> that was not granted) stands: still
    /// waiting (null), granted (its fencing token), or ended; an ended wait throws the reason
    /// (<see cref="EtcdException"/>: deadlock, lock timeout, aborted or expired transaction).
    /// </summary>
    public long? LockWaitState(long txnId, long sequence)
    {
        var (outcome, token, error) = Locks.WaitState(txnId, sequence);
        return outcome switch
        {
            LockTable.WaitOutcome.Waiting => null,
            LockTable.WaitOutcome.Granted => token,
            _ => throw new EtcdException(error!),
        };
    }

    private BeginResponse ApplyTxnBegin(long timeMs, BeginRequest request)
    {
        ThrowIfCorrupt();
        Locks.RunTimers(timeMs);
        if (LockTargets.Validate(request, Limits) is { } invalid)
        {
            throw new EtcdException(invalid);
        }

        long? leaseDeadline = _leases.TryGetValue(request.Lease, out var lease) ? lease.DeadlineMs : null;
        var response = Locks.Begin(request, timeMs, leaseDeadline, Locks.CountOnLease(request.Lease));
        response.Header = Header(_revision);
        return response;
    }

    /// <summary>A Begin carrying lock targets: the transaction opens and takes them in the same command.</summary>
    private TxnBeginResult ApplyTxnBeginLocked(long timeMs, BeginRequest request)
    {
        ThrowIfCorrupt();
        Locks.RunTimers(timeMs);
        long? leaseDeadline = _leases.TryGetValue(request.Lease, out var lease) ? lease.DeadlineMs : null;
        var result = Locks.BeginLocked(request, timeMs, leaseDeadline, Locks.CountOnLease(request.Lease));
        result.Begin.Header = Header(_revision);
        return result;
    }

    private LockResult ApplyTxnLock(long timeMs, Protocol.Transactions.LockRequest request)
    {
        ThrowIfCorrupt();
        Locks.RunTimers(timeMs);
        return Locks.Lock(request, timeMs);
    }

    /// <summary>
    /// Commits a pessimistic transaction: checks it still holds its locks, applies its writes in one
    /// revision (through the txn path, so etcd's validation applies), then releases every lock.
    /// </summary>
    private CommitResponse ApplyTxnCommit(long timeMs, CommitRequest request, List<Event> events)
    {
        ThrowIfCorrupt();
        Locks.RunTimers(timeMs);
        var txn = Locks.PrepareCommit(request, timeMs, LeaseDeadline(request.TxnId), out var remembered);
        if (remembered is not null)
        {
            return remembered;
        }

        var response = new CommitResponse { Revision = _revision };
        if (request.Writes.Count > 0)
        {
            var applied = ApplyWrites(request.Writes, events);
            response.Revision = applied.Header.Revision;
            response.Responses.AddRange(applied.Responses);
        }

        response.Header = Header(_revision);
        Locks.FinishCommit(txn!, response);
        return response;
    }

    private AbortResponse ApplyTxnAbort(long timeMs, AbortRequest request)
    {
        Locks.RunTimers(timeMs);
        Locks.Rollback(request.TxnId);
        return new AbortResponse { Header = Header(_revision) };
    }

    private TxnTimersResult ApplyTxnTimers(long timeMs) => Locks.RunTimers(timeMs);

    /// <summary>
    /// Optimistic commit: refuses if any key in a read range was put or deleted after the read
    /// revision (checked against each key's MVCC history, so inserts and deletions count), or if a
    /// write overlaps a lock an open transaction holds; otherwise applies the writes in one revision.
    /// </summary>
    private OptimisticCommitResponse ApplyTxnOptimisticCommit(long timeMs, OptimisticCommitRequest request, List<Event> events)
    {
        ThrowIfCorrupt();
        Locks.RunTimers(timeMs);
        if (request.IdempotencyKey.Length > Limits.IdempotencyKeySizeBytesMax)
        {
            throw new EtcdException(TransactionErrors.Invalid($"idempotency_key is longer than {Limits.IdempotencyKeySizeBytesMax} bytes"));
        }

        if (!request.IdempotencyKey.IsEmpty && Locks.RememberedCommit(request.IdempotencyKey) is { } earlier)
        {
            var duplicate = earlier.Clone();
            duplicate.Duplicate = true;
            return duplicate;
        }

        if (request.ReadRevision <= 0)
        {
            throw new EtcdException(TransactionErrors.Invalid("read_revision must be positive"));
        }

        if (request.ReadRevision > _revision)
        {
            throw new EtcdException(EtcdError.FutureRevision);
        }

        if (request.ReadRevision < _compactMainRev)
        {
            throw new EtcdException(EtcdError.Compacted);
        }

        if (request.Reads.Count > Limits.OptimisticReadRangesMax)
        {
            throw new EtcdException(TransactionErrors.LimitReached($"too many read ranges (limit {Limits.OptimisticReadRangesMax})"));
        }

        foreach (var read in request.Reads)
        {
            ValidateSpan(read.Key, read.RangeEnd);
        }

        var spans = WriteSpans(request.Writes);
        foreach (var read in request.Reads)
        {
            foreach (var record in RecordsInRange(read.Key, read.RangeEnd))
            {
                var changed = record.History[^1].Main;
                if (changed > request.ReadRevision)
                {
                    Locks.Counters.OptimisticConflicts++;
                    throw new EtcdException(TransactionErrors.Conflict(record.Key, changed, request.ReadRevision));
                }
            }
        }

        foreach (var span in spans)
        {
            if (Locks.HolderOf(span) is var holder && holder != 0)
            {
                throw new EtcdException(TransactionErrors.WriteLocked(span.Start, holder));
            }
        }

        var response = new OptimisticCommitResponse { Revision = _revision };
        if (request.Writes.Count > 0)
        {
            var applied = ApplyWrites(request.Writes, events);
            response.Revision = applied.Header.Revision;
            response.Responses.AddRange(applied.Responses);
        }

        response.Header = Header(_revision);
        Locks.Counters.OptimisticCommits++;
        if (!request.IdempotencyKey.IsEmpty)
        {
            Locks.RememberCommit(request.IdempotencyKey, response);
        }

        return response;
    }

    /// <summary>Applies puts and deletes as one txn (one revision), with the txn path's validation and quota.</summary>
    private TxnResponse ApplyWrites(IEnumerable<RequestOp> writes, List<Event> events)
    {
        var txn = new TxnRequest();
        txn.Success.AddRange(writes);
        return ApplyTxn(txn, events);
    }

    private static List<KeySpan> WriteSpans(IEnumerable<RequestOp> writes)
    {
        var spans = new List<KeySpan>();
        foreach (var op in writes)
        {
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestPut:
                    if (op.RequestPut.Key.IsEmpty)
                    {
                        throw new EtcdException(EtcdError.EmptyKey);
                    }

                    spans.Add(KeySpan.FromEtcd(op.RequestPut.Key, ByteString.Empty));
                    break;
                case RequestOp.RequestOneofCase.RequestDeleteRange:
                    ValidateSpan(op.RequestDeleteRange.Key, op.RequestDeleteRange.RangeEnd);
                    spans.Add(KeySpan.FromEtcd(op.RequestDeleteRange.Key, op.RequestDeleteRange.RangeEnd));
                    break;
                default:
                    throw new EtcdException(TransactionErrors.Invalid("a transaction commit takes only put and delete_range writes"));
            }
        }

        return spans;
    }

    private static void ValidateSpan(ByteString key, ByteString rangeEnd)
    {
        if (key.IsEmpty)
        {
            throw new EtcdException(EtcdError.EmptyKey);
        }

        if (!rangeEnd.IsEmpty && !rangeEnd.Equals(GteRangeEnd) && Mvcc.KeyComparer.CompareKeys(rangeEnd, key) <= 0)
        {
            throw new EtcdException(TransactionErrors.Invalid("range_end must be greater than key (the range is empty or inverted)"));
        }
    }

    private long? LeaseDeadline(long txnId)
    {
        var lease = Locks.LeaseOf(txnId);
        return lease != 0 && _leases.TryGetValue(lease, out var l) ? l.DeadlineMs : null;
    }
}
