using System.Text;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;

namespace Arbiter.Core.Transactions;

/// <summary>
/// The errors of arbiter.v1.Transactions. Each carries a <see cref="TransactionError"/> detail with
/// a distinct kind, so that clients tell a deadlock from a lock timeout, a busy lock, an aborted or
/// expired transaction and an optimistic conflict without parsing text.
/// </summary>
public static class TransactionErrors
{
    /// <summary>Abort reason: the client rolled back.</summary>
    public const string ReasonRollback = "rollback";

    /// <summary>Abort reason: chosen as a deadlock victim.</summary>
    public const string ReasonDeadlock = "deadlock";

    /// <summary>Abort reason: the transaction's lease expired.</summary>
    public const string ReasonLeaseExpired = "lease expired";

    /// <summary>Abort reason: the transaction's lease was revoked.</summary>
    public const string ReasonLeaseRevoked = "lease revoked";

    /// <summary>Abort reason: the transaction time limit passed.</summary>
    public const string ReasonTimeLimit = "time limit";

    /// <summary>Reason given when a committed transaction is used again.</summary>
    public const string ReasonCommitted = "committed";

    /// <summary>This transaction was the deadlock victim (Aborted); the cycle is in the detail.</summary>
    public static EtcdError Deadlock(long txnId, IEnumerable<CycleEdge> cycle)
    {
        var detail = new TransactionError { Kind = TransactionError.Types.Kind.Deadlock, TxnId = txnId, Reason = ReasonDeadlock };
        detail.Cycle.AddRange(cycle);
        var text = string.Join(" -> ", detail.Cycle.Select(e => $"txn {e.TxnId} waits for {Describe(e.Key, e.RangeEnd)} held by txn {e.WaitsForTxnId}"));
        return new EtcdError(ErrorStatusCode.Aborted, $"arbiter: deadlock detected, transaction {txnId} aborted as the victim: {text}") { Transaction = detail };
    }

    /// <summary>The lock was not granted within the wait timeout (DeadlineExceeded); the transaction stays open.</summary>
    public static EtcdError LockTimeout(long txnId, ByteString key, ByteString rangeEnd) => new(
        ErrorStatusCode.DeadlineExceeded, $"arbiter: lock wait timeout on {Describe(key, rangeEnd)} for transaction {txnId}")
    {
        Transaction = new TransactionError { Kind = TransactionError.Types.Kind.LockTimeout, TxnId = txnId, Key = key },
    };

    /// <summary>NOWAIT and the lock is taken (FailedPrecondition); the transaction stays open.</summary>
    public static EtcdError LockBusy(long txnId, ByteString key, ByteString rangeEnd, long holderTxnId) => new(
        ErrorStatusCode.FailedPrecondition, $"arbiter: lock busy: {Describe(key, rangeEnd)} is held or queued for by transaction {holderTxnId}")
    {
        Transaction = new TransactionError { Kind = TransactionError.Types.Kind.LockBusy, TxnId = txnId, Key = key },
    };

    /// <summary>An optimistic write overlaps a lock held by an open transaction (FailedPrecondition).</summary>
    public static EtcdError WriteLocked(ByteString key, long holderTxnId) => new(
        ErrorStatusCode.FailedPrecondition, $"arbiter: lock busy: key {Describe(key, ByteString.Empty)} is locked by transaction {holderTxnId}")
    {
        Transaction = new TransactionError { Kind = TransactionError.Types.Kind.LockBusy, TxnId = holderTxnId, Key = key },
    };

    /// <summary>The transaction is no longer open (Aborted), for the given reason.</summary>
    public static EtcdError Aborted(long txnId, string reason) => new(
        ErrorStatusCode.Aborted, $"arbiter: transaction {txnId} is no longer open ({reason})")
    {
        Transaction = new TransactionError { Kind = TransactionError.Types.Kind.Aborted, TxnId = txnId, Reason = reason },
    };

    /// <summary>Optimistic commit conflict (Aborted): the key changed at the revision, after the read revision.</summary>
    public static EtcdError Conflict(ByteString key, long revision, long readRevision) => new(
        ErrorStatusCode.Aborted, $"arbiter: conflict: key {Describe(key, ByteString.Empty)} changed at revision {revision}, after read revision {readRevision}")
    {
        Transaction = new TransactionError { Kind = TransactionError.Types.Kind.Conflict, Key = key, Revision = revision },
    };

    /// <summary>No such transaction (NotFound).</summary>
    public static EtcdError Unknown(long txnId) => new(ErrorStatusCode.NotFound, $"arbiter: transaction {txnId} not found")
    {
        Transaction = new TransactionError { Kind = TransactionError.Types.Kind.UnknownTransaction, TxnId = txnId },
    };

    /// <summary>Bad input (InvalidArgument) with a plain explanation.</summary>
    public static EtcdError Invalid(string what) => new(ErrorStatusCode.InvalidArgument, "arbiter: " + what);

    /// <summary>A limit was reached (ResourceExhausted).</summary>
    public static EtcdError LimitReached(string what) => new(ErrorStatusCode.ResourceExhausted, "arbiter: " + what);

    /// <summary>The request does not fit the transaction's state (FailedPrecondition).</summary>
    public static EtcdError NotAllowed(string what) => new(ErrorStatusCode.FailedPrecondition, "arbiter: " + what);

    /// <summary>Rebuilds the error a command result carries.</summary>
    public static EtcdError FromCommandError(CommandError error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new EtcdError((ErrorStatusCode)error.StatusCode, error.Message) { Transaction = error.Transaction };
    }

    /// <summary>A key or range for messages: printable keys as text, others as hex.</summary>
    public static string Describe(ByteString key, ByteString rangeEnd)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(rangeEnd);
        var k = Printable(key);
        if (rangeEnd.IsEmpty)
        {
            return $"key \"{k}\"";
        }

        return rangeEnd.Length == 1 && rangeEnd[0] == 0 ? $"range [\"{k}\", end)" : $"range [\"{k}\", \"{Printable(rangeEnd)}\")";
    }

    private static string Printable(ByteString bytes)
    {
        foreach (var b in bytes.Span)
        {
            if (b < 0x20 || b > 0x7e)
            {
                return "0x" + Convert.ToHexString(bytes.Span);
            }
        }

        return Encoding.ASCII.GetString(bytes.Span);
    }
}
