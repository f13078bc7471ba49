using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Client;

/// <summary>Builds the operations of a transaction branch.</summary>
public static class Op
{
    /// <summary>Put a UTF-8 value, optionally attached to a lease.</summary>
    public static RequestOp Put(string key, string value, long leaseId = 0) => Put(Keys.From(key), Keys.From(value), leaseId);

    /// <summary>Put raw bytes, optionally attached to a lease.</summary>
    public static RequestOp Put(ByteString key, ByteString value, long leaseId = 0) =>
        new() { RequestPut = new PutRequest { Key = key, Value = value, Lease = leaseId } };

    /// <summary>Get one key.</summary>
    public static RequestOp Get(string key) => Get(Keys.From(key));

    /// <summary>Get one key.</summary>
    public static RequestOp Get(ByteString key) => new() { RequestRange = new RangeRequest { Key = key } };

    /// <summary>Get every key under a prefix, ordered by create revision, at most <paramref name="limit"/> (0 = all).</summary>
    public static RequestOp GetPrefixByCreateRevision(string prefix, long limit = 0) => new()
    {
        RequestRange = new RangeRequest
        {
            Key = Keys.From(prefix),
            RangeEnd = Keys.PrefixEnd(prefix),
            SortTarget = RangeRequest.Types.SortTarget.Create,
            SortOrder = RangeRequest.Types.SortOrder.Ascend,
            Limit = limit,
        },
    };

    /// <summary>Any range request.</summary>
    public static RequestOp Range(RangeRequest request) => new() { RequestRange = request };

    /// <summary>Delete one key.</summary>
    public static RequestOp Delete(string key) => Delete(Keys.From(key));

    /// <summary>Delete one key.</summary>
    public static RequestOp Delete(ByteString key) => new() { RequestDeleteRange = new DeleteRangeRequest { Key = key } };

    /// <summary>Delete every key under a prefix.</summary>
    public static RequestOp DeletePrefix(string prefix) =>
        new() { RequestDeleteRange = new DeleteRangeRequest { Key = Keys.From(prefix), RangeEnd = Keys.PrefixEnd(prefix) } };
}

/// <summary>A readable transaction: <c>client.Txn().If(...).Then(...).Else(...).CommitAsync()</c>.</summary>
public sealed class TxnBuilder
{
    private readonly ArbiterClient _client;
    private readonly TxnRequest _request = new();

    internal TxnBuilder(ArbiterClient client) => _client = client;

    /// <summary>Guards that must all hold for <see cref="Then"/> to run (else <see cref="Else"/> runs).</summary>
    public TxnBuilder If(params Compare[] compares)
    {
        _request.Compare.AddRange(compares);
        return this;
    }

    /// <summary>Operations when every guard holds.</summary>
    public TxnBuilder Then(params RequestOp[] ops)
    {
        _request.Success.AddRange(ops);
        return this;
    }

    /// <summary>Operations when a guard fails.</summary>
    public TxnBuilder Else(params RequestOp[] ops)
    {
        _request.Failure.AddRange(ops);
        return this;
    }

    /// <summary>The request built so far.</summary>
    public TxnRequest Request => _request;

    /// <summary>Sends the transaction (one revision, all or nothing). Not retried: a lost answer leaves the outcome unknown.</summary>
    public Task<TxnResponse> CommitAsync(CancellationToken cancellationToken = default) => _client.TxnAsync(_request, cancellationToken);
}
