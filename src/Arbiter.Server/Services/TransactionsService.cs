using Arbiter.Node;
using Arbiter.Protocol.Transactions;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Arbiter.Server.Services;

/// <summary>
/// arbiter.v1.Transactions over the node. Every member serves it: state changes are proposed
/// through the log (a follower forwards them to the leader, as for every write) and a queued lock
/// request is waited for on this member's applied state. Errors carry a
/// <see cref="TransactionError"/> in the <c>arbiter-transaction-error-bin</c> trailer.
/// </summary>
public sealed class TransactionsService(ArbiterNode node, ServerShutdown shutdown, ServerOptions options, ILogger<TransactionsService> logger) : Transactions.TransactionsBase
{
    /// <inheritdoc />
    public override Task<BeginResponse> Begin(BeginRequest request, ServerCallContext context) =>
        node.TxnBeginAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override async Task<LockResponse> Lock(LockRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        using var lifetime = shutdown.Link(context);
        try
        {
            return await node.TxnLockAsync(request, lifetime.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            shutdown.ThrowIfStopping();
            throw;
        }
    }

    /// <inheritdoc />
    public override Task<CommitResponse> Commit(CommitRequest request, ServerCallContext context) =>
        node.TxnCommitAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<AbortResponse> Abort(AbortRequest request, ServerCallContext context) =>
        node.TxnAbortAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<OptimisticCommitResponse> OptimisticCommit(OptimisticCommitRequest request, ServerCallContext context) =>
        node.TxnOptimisticCommitAsync(request, context.CancellationToken);

    /// <inheritdoc />
    public override Task<TransactionStatusResponse> Status(TransactionStatusRequest request, ServerCallContext context) =>
        node.TxnStatusAsync(context.CancellationToken);

    /// <inheritdoc />
    public override async Task Session(IAsyncStreamReader<SessionRequest> requestStream, IServerStreamWriter<SessionResponse> responseStream, ServerCallContext context)
    {
        using var session = new TransactionSession(node, shutdown, options, logger);
        await session.RunAsync(requestStream, responseStream, context).ConfigureAwait(false);
    }
}
