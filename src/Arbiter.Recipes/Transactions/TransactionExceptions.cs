using Arbiter.Client;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Recipes.Transactions;

/// <summary>A transaction failed for a concurrency reason; <see cref="IsRetryable"/> says whether running it again may succeed.</summary>
public class TransactionException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TransactionException(string message, TransactionError? detail = null, Exception? inner = null)
        : base(message, inner) => Detail = detail;

    /// <summary>The server's detail (null when the error came from an etcd backend).</summary>
    public TransactionError? Detail { get; }

    /// <summary>The transaction concerned (0 when unknown).</summary>
    public long TransactionId => Detail?.TxnId ?? 0;

    /// <summary>Whether running the transaction again may succeed (what <c>RunTransactionAsync</c> retries).</summary>
    public virtual bool IsRetryable => true;

    /// <summary>
    /// The typed exception for a failed call, or null when <paramref name="e"/> is not a transaction
    /// error. Unimplemented (a server without arbiter.v1, e.g. real etcd) becomes <see cref="NotSupportedException"/>.
    /// </summary>
    public static Exception? FromRpc(RpcException e, string feature)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e.StatusCode == StatusCode.Unimplemented)
        {
            return new NotSupportedException($"{feature} needs an Arbiter server (arbiter.v1.Transactions); this endpoint does not serve it (a real etcd?).", e);
        }

        var entry = e.Trailers.Get(TransactionErrorMetadata.Trailer);
        if (entry is null || !entry.IsBinary)
        {
            return null;
        }

        var detail = TransactionError.Parser.ParseFrom(entry.ValueBytes);
        var message = e.Status.Detail;
        return detail.Kind switch
        {
            TransactionError.Types.Kind.Deadlock => new DeadlockException(message, detail, e),
            TransactionError.Types.Kind.LockTimeout => new LockTimeoutException(message, detail, e),
            TransactionError.Types.Kind.LockBusy => new LockBusyException(message, detail, e),
            TransactionError.Types.Kind.Conflict => new ConflictException(message, detail, e),
            TransactionError.Types.Kind.UnknownTransaction => new UnknownTransactionException(message, detail, e),
            _ => new TransactionAbortedException(message, detail, e),
        };
    }
}

/// <summary>One step of a deadlock cycle: a transaction, the key or range it waited for, and the transaction it waited for.</summary>
/// <param name="TransactionId">The waiting transaction.</param>
/// <param name="Key">The key (or range start) it waited for.</param>
/// <param name="RangeEnd">The range end (empty for a single key).</param>
/// <param name="Exclusive">Whether it asked for an exclusive lock.</param>
/// <param name="WaitsForTransactionId">The next transaction in the cycle.</param>
public sealed record DeadlockEdge(long TransactionId, ByteString Key, ByteString RangeEnd, bool Exclusive, long WaitsForTransactionId);

/// <summary>This transaction was chosen as the victim of a deadlock and aborted; <see cref="Cycle"/> names the cycle.</summary>
public sealed class DeadlockException(string message, TransactionError detail, Exception? inner = null) : TransactionException(message, detail, inner)
{
    /// <summary>The cycle, starting with the transaction whose wait closed it.</summary>
    public IReadOnlyList<DeadlockEdge> Cycle { get; } =
        [.. detail.Cycle.Select(e => new DeadlockEdge(e.TxnId, e.Key, e.RangeEnd, e.Mode == LockMode.Exclusive, e.WaitsForTxnId))];
}

/// <summary>A lock was not granted within its wait timeout. The transaction is still open.</summary>
public sealed class LockTimeoutException(string message, TransactionError detail, Exception? inner = null) : TransactionException(message, detail, inner);

/// <summary>NOWAIT and the lock is taken. The transaction is still open.</summary>
public sealed class LockBusyException(string message, TransactionError detail, Exception? inner = null) : TransactionException(message, detail, inner);

/// <summary>The transaction is no longer open: rolled back, lease expired or revoked, or past its time limit (<see cref="Reason"/>).</summary>
public sealed class TransactionAbortedException(string message, TransactionError? detail, Exception? inner = null) : TransactionException(message, detail, inner)
{
    /// <summary>"rollback", "lease expired", "lease revoked", "time limit", "committed", ….</summary>
    public string Reason => Detail?.Reason ?? "";

    /// <inheritdoc />
    public override bool IsRetryable => Reason is not ("rollback" or "committed");
}

/// <summary>An optimistic commit failed: a key it read changed after its read revision (<see cref="Key"/>, <see cref="Revision"/>).</summary>
public sealed class ConflictException(string message, TransactionError? detail, Exception? inner = null) : TransactionException(message, detail, inner)
{
    /// <summary>The key that changed (empty on an etcd backend, which does not say).</summary>
    public ByteString Key => Detail?.Key ?? ByteString.Empty;

    /// <summary>The revision it changed at (0 on an etcd backend).</summary>
    public long Revision => Detail?.Revision ?? 0;
}

/// <summary>The server does not know the transaction (never begun, or forgotten long ago).</summary>
public sealed class UnknownTransactionException(string message, TransactionError detail, Exception? inner = null) : TransactionException(message, detail, inner)
{
    /// <inheritdoc />
    public override bool IsRetryable => false;
}
