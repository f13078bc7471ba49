using System.Text;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Protocol;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Lock;
using Arbiter.Server.Concurrency;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>
/// v3lockpb.Lock: etcd's mutex recipe run server-side. The lock key is
/// <c>name/&lt;lease hex&gt;</c>; its create revision orders the waiters and is the fencing token.
/// Unlike etcd 3.4, a waiter whose lease expired while waiting is told so instead of being
/// handed a lock it no longer holds.
/// </summary>
public sealed class LockService(NodeRecipes recipes, ServerShutdown shutdown) : Protocol.Lock.Lock.LockBase
{
    private ArbiterNode Node => recipes.Node;

    /// <inheritdoc />
    public override Task<LockResponse> Lock(LockRequest request, ServerCallContext context) =>
        RecipeErrors.AsClientErrorsAsync(LockCoreAsync(request, context));

    private async Task<LockResponse> LockCoreAsync(LockRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var lifetime = shutdown.Link(context);
        var token = lifetime.Token;
        var prefix = ByteString.CopyFrom([.. request.Name.Span, (byte)'/']);
        var myKey = ByteString.CopyFrom([.. prefix.Span, .. Encoding.ASCII.GetBytes(KeyRanges.LeaseHex(request.Lease))]);

        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = myKey, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = myKey, Lease = request.Lease } });
        txn.Success.Add(new RequestOp { RequestRange = FirstCreated(prefix) });
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = myKey } });
        txn.Failure.Add(new RequestOp { RequestRange = FirstCreated(prefix) });
        var response = await Node.TxnAsync(txn, token).ConfigureAwait(false);

        var myRevision = response.Succeeded ? response.Header.Revision : response.Responses[0].ResponseRange.Kvs[0].CreateRevision;
        var owner = response.Responses[1].ResponseRange.Kvs;
        var header = response.Header;
        if (owner.Count != 0 && owner[0].CreateRevision != myRevision)
        {
            try
            {
                header = await recipes.WaitDeletesAsync(prefix, myRevision - 1, token).ConfigureAwait(false);
                if (!await recipes.StillOwnsAsync(myKey, myRevision, token).ConfigureAwait(false))
                {
                    throw new EtcdException(EtcdError.LeaseNotFound);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or EtcdException)
            {
                // Leave no orphaned waiter key behind (guarded: never delete a newer holder's key).
                await DeleteIfOwnedAsync(myKey, myRevision).ConfigureAwait(false);
                shutdown.ThrowIfStopping();
                throw;
            }
        }

        return new LockResponse { Header = header, Key = myKey };
    }

    /// <inheritdoc />
    public override Task<UnlockResponse> Unlock(UnlockRequest request, ServerCallContext context) =>
        RecipeErrors.AsClientErrorsAsync(UnlockCoreAsync(request, context));

    private async Task<UnlockResponse> UnlockCoreAsync(UnlockRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var response = await Node.DeleteRangeAsync(new DeleteRangeRequest { Key = request.Key }, context.CancellationToken).ConfigureAwait(false);
        return new UnlockResponse { Header = response.Header };
    }

    private async Task DeleteIfOwnedAsync(ByteString key, long createRevision)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = createRevision });
        txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
        try
        {
            await Node.TxnAsync(txn, CancellationToken.None).ConfigureAwait(false);
        }
        catch (EtcdException)
        {
            // Best effort: the key goes with its lease anyway.
        }
    }

    internal static RangeRequest FirstCreated(ByteString prefix) => new()
    {
        Key = prefix,
        RangeEnd = KeyRanges.PrefixEnd(prefix),
        SortOrder = RangeRequest.Types.SortOrder.Ascend,
        SortTarget = RangeRequest.Types.SortTarget.Create,
        Limit = 1,
    };
}
