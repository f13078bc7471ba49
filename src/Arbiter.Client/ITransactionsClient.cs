using Arbiter.Protocol.Transactions;

namespace Arbiter.Client;

/// <summary>
/// The raw arbiter.v1.Transactions calls, implemented by the embedded and the gRPC client. Errors
/// surface as <c>RpcException</c> whose <c>arbiter-transaction-error-bin</c> trailer holds a
/// <see cref="TransactionError"/>; against a server that lacks the service (a real etcd) the
/// calls fail with <c>StatusCode.Unimplemented</c>. The SDK (Arbiter.Recipes.Transactions)
/// turns both into typed exceptions.
/// </summary>
public interface ITransactionsClient
{
    /// <summary>Transactions.Begin.</summary>
    Task<BeginResponse> TxnBeginAsync(BeginRequest request, CancellationToken cancellationToken = default);

    /// <summary>Transactions.Lock (returns once granted).</summary>
    Task<LockResponse> TxnLockAsync(LockRequest request, CancellationToken cancellationToken = default);

    /// <summary>Transactions.Commit.</summary>
    Task<CommitResponse> TxnCommitAsync(CommitRequest request, CancellationToken cancellationToken = default);

    /// <summary>Transactions.Abort.</summary>
    Task<AbortResponse> TxnAbortAsync(AbortRequest request, CancellationToken cancellationToken = default);

    /// <summary>Transactions.OptimisticCommit.</summary>
    Task<OptimisticCommitResponse> TxnOptimisticCommitAsync(OptimisticCommitRequest request, CancellationToken cancellationToken = default);

    /// <summary>Transactions.Status.</summary>
    Task<TransactionStatusResponse> TxnStatusAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// This client as a transaction's key-value reads and Txns should go through it: the gRPC client
    /// carries them on its transaction session stream with the transaction calls
    /// (<see cref="GrpcArbiterClient.ForTransactions"/>); the embedded client is itself.
    /// </summary>
    IArbiterClient KvForTransactions { get; }
}

/// <summary>Names shared by the server and the clients for transaction errors.</summary>
public static class TransactionErrorMetadata
{
    /// <summary>The trailer that carries a serialized <see cref="TransactionError"/>.</summary>
    public const string Trailer = "arbiter-transaction-error-bin";
}
