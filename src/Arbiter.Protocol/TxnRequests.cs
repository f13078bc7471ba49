using Arbiter.Protocol.Etcd;

namespace Arbiter.Protocol;

/// <summary>Facts about a txn request that the client (retry safety) and the server (serving it outside the log) both need.</summary>
public static class TxnRequests
{
    /// <summary>True when every op in both branches is a Range (etcd's isTxnReadonly).</summary>
    public static bool IsReadOnly(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        foreach (var op in request.Success)
        {
            if (op.RequestCase != RequestOp.RequestOneofCase.RequestRange)
            {
                return false;
            }
        }

        foreach (var op in request.Failure)
        {
            if (op.RequestCase != RequestOp.RequestOneofCase.RequestRange)
            {
                return false;
            }
        }

        return true;
    }
}
