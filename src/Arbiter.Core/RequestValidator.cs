using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Core;

/// <summary>
/// Stateless checks of client requests against <see cref="CoreLimits"/>, with etcd's errors.
/// Run at the API edge before anything is proposed; the core runs them again when applying.
/// </summary>
/// <remarks>
/// Mirrors etcd v3.4's v3rpc checks (checkRangeRequest, checkPutRequest, checkDeleteRequest,
/// checkTxnRequest, checkIntervals) in the same order, then the size limits (etcd checks the
/// proposal size after those). Additions etcd lacks: unknown enum values (sort order/target,
/// compare result/target) are refused with InvalidArgument instead of being ignored or crashing.
/// </remarks>
public static class RequestValidator
{
    /// <summary>Checks a Range; null when valid.</summary>
    public static EtcdError? Validate(RangeRequest request, CoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        return CheckRange(request) ?? CheckRangeSize(request, limits);
    }

    /// <summary>Checks a Put; null when valid.</summary>
    public static EtcdError? Validate(PutRequest request, CoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        return CheckPut(request) ?? CheckPutSize(request, limits) ?? CheckRequestSize(request, limits);
    }

    /// <summary>Checks a DeleteRange; null when valid.</summary>
    public static EtcdError? Validate(DeleteRangeRequest request, CoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        return CheckDelete(request) ?? CheckDeleteSize(request, limits) ?? CheckRequestSize(request, limits);
    }

    /// <summary>Checks a Txn (op counts, nested ops, duplicate keys); null when valid.</summary>
    public static EtcdError? Validate(TxnRequest request, CoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        var error = CheckTxn(request, limits.TxnOpsMax);
        if (error != null)
        {
            return error;
        }

        if (CheckIntervals(request.Success, out _, out _) is { } success)
        {
            return success;
        }

        if (CheckIntervals(request.Failure, out _, out _) is { } failure)
        {
            return failure;
        }

        return CheckTxnSizes(request, limits) ?? CheckRequestSize(request, limits);
    }

    /// <summary>Checks a LeaseGrant (TTL bounds); null when valid.</summary>
    /// <remarks>Short, zero and negative TTLs are valid: the core raises them to the minimum, as etcd does.</remarks>
    public static EtcdError? Validate(LeaseGrantRequest request, CoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        return request.TTL > limits.LeaseTtlSecondsMax ? EtcdError.LeaseTtlTooLarge : null;
    }

    private static EtcdError? CheckRange(RangeRequest r)
    {
        if (r.Key.IsEmpty)
        {
            return EtcdError.EmptyKey;
        }

        if (r.SortOrder is < RangeRequest.Types.SortOrder.None or > RangeRequest.Types.SortOrder.Descend)
        {
            return CoreErrors.InvalidSortOrder;
        }

        if (r.SortTarget is < RangeRequest.Types.SortTarget.Key or > RangeRequest.Types.SortTarget.Value)
        {
            return CoreErrors.InvalidSortTarget;
        }

        return null;
    }

    private static EtcdError? CheckPut(PutRequest r)
    {
        if (r.Key.IsEmpty)
        {
            return EtcdError.EmptyKey;
        }

        if (r.IgnoreValue && !r.Value.IsEmpty)
        {
            return EtcdError.ValueProvided;
        }

        if (r.IgnoreLease && r.Lease != 0)
        {
            return EtcdError.LeaseProvided;
        }

        return null;
    }

    private static EtcdError? CheckDelete(DeleteRangeRequest r) => r.Key.IsEmpty ? EtcdError.EmptyKey : null;

    /// <summary>etcd's checkTxnRequest: the widest of compares/success/failure bounds the ops, nested txns get what is left.</summary>
    private static EtcdError? CheckTxn(TxnRequest r, int opsMax)
    {
        var opc = Math.Max(r.Compare.Count, Math.Max(r.Success.Count, r.Failure.Count));
        if (opc > opsMax)
        {
            return EtcdError.TooManyOps;
        }

        foreach (var c in r.Compare)
        {
            if (c.Key.IsEmpty)
            {
                return EtcdError.EmptyKey;
            }

            if (c.Result is < Compare.Types.CompareResult.Equal or > Compare.Types.CompareResult.NotEqual)
            {
                return CoreErrors.InvalidCompareResult;
            }

            if (c.Target is < Compare.Types.CompareTarget.Version or > Compare.Types.CompareTarget.Lease)
            {
                return CoreErrors.InvalidCompareTarget;
            }
        }

        foreach (var op in r.Success)
        {
            if (CheckOp(op, opsMax - opc) is { } error)
            {
                return error;
            }
        }

        foreach (var op in r.Failure)
        {
            if (CheckOp(op, opsMax - opc) is { } error)
            {
                return error;
            }
        }

        return null;
    }

    private static EtcdError? CheckOp(RequestOp op, int opsMax) => op.RequestCase switch
    {
        RequestOp.RequestOneofCase.RequestRange => CheckRange(op.RequestRange),
        RequestOp.RequestOneofCase.RequestPut => CheckPut(op.RequestPut),
        RequestOp.RequestOneofCase.RequestDeleteRange => CheckDelete(op.RequestDeleteRange),
        RequestOp.RequestOneofCase.RequestTxn => CheckTxn(op.RequestTxn, opsMax),
        // An empty op: etcd answers "key not found".
        _ => EtcdError.KeyNotFound,
    };

    /// <summary>A delete's key interval [Start, End) with etcd's string-interval semantics.</summary>
    private readonly record struct Interval(ByteString Start, ByteString End, bool IsPoint)
    {
        /// <summary>
        /// Whether the interval holds <paramref name="key"/>. A range_end of "\0" is taken literally,
        /// as etcd's interval tree does: [key, "\0") holds nothing, so such deletes never count as
        /// duplicates of a put.
        /// </summary>
        public bool Contains(ByteString key) => IsPoint
            ? Start.Equals(key)
            : KeyComparer.CompareKeys(Start, key) <= 0 && KeyComparer.CompareKeys(key, End) < 0;
    }

    /// <summary>
    /// etcd's checkIntervals: a put may not share its key with another put of the same level or of a
    /// nested txn (then/else of one nested txn may share), nor fall in a delete of this level or of an
    /// earlier-checked nested txn.
    /// </summary>
    private static EtcdError? CheckIntervals(IEnumerable<RequestOp> ops, out HashSet<ByteString> puts, out List<Interval> deletes)
    {
        deletes = [];
        puts = [];
        foreach (var op in ops)
        {
            if (op.RequestCase == RequestOp.RequestOneofCase.RequestDeleteRange)
            {
                var d = op.RequestDeleteRange;
                deletes.Add(new Interval(d.Key, d.RangeEnd, d.RangeEnd.IsEmpty));
            }
        }

        foreach (var op in ops)
        {
            if (op.RequestCase != RequestOp.RequestOneofCase.RequestTxn)
            {
                continue;
            }

            if (CheckIntervals(op.RequestTxn.Success, out var putsThen, out var delsThen) is { } e1)
            {
                return e1;
            }

            if (CheckIntervals(op.RequestTxn.Failure, out var putsElse, out var delsElse) is { } e2)
            {
                return e2;
            }

            foreach (var k in putsThen)
            {
                if (puts.Contains(k) || ContainsKey(deletes, k))
                {
                    return EtcdError.DuplicateKey;
                }

                puts.Add(k);
            }

            foreach (var k in putsElse)
            {
                // then/else are exclusive, so a key put by both branches is fine.
                if ((puts.Contains(k) && !putsThen.Contains(k)) || ContainsKey(deletes, k))
                {
                    return EtcdError.DuplicateKey;
                }

                puts.Add(k);
            }

            deletes.AddRange(delsThen);
            deletes.AddRange(delsElse);
        }

        foreach (var op in ops)
        {
            if (op.RequestCase != RequestOp.RequestOneofCase.RequestPut)
            {
                continue;
            }

            var k = op.RequestPut.Key;
            if (puts.Contains(k) || ContainsKey(deletes, k))
            {
                return EtcdError.DuplicateKey;
            }

            puts.Add(k);
        }

        return null;
    }

    private static bool ContainsKey(List<Interval> deletes, ByteString key)
    {
        foreach (var d in deletes)
        {
            if (d.Contains(key))
            {
                return true;
            }
        }

        return false;
    }

    private static EtcdError? CheckRangeSize(RangeRequest r, CoreLimits limits) =>
        r.Key.Length > limits.KeySizeBytesMax || r.RangeEnd.Length > limits.KeySizeBytesMax ? EtcdError.RequestTooLarge : null;

    private static EtcdError? CheckPutSize(PutRequest r, CoreLimits limits) =>
        r.Key.Length > limits.KeySizeBytesMax || r.Value.Length > limits.ValueSizeBytesMax ? EtcdError.RequestTooLarge : null;

    private static EtcdError? CheckDeleteSize(DeleteRangeRequest r, CoreLimits limits) =>
        r.Key.Length > limits.KeySizeBytesMax || r.RangeEnd.Length > limits.KeySizeBytesMax ? EtcdError.RequestTooLarge : null;

    private static EtcdError? CheckRequestSize(IMessage request, CoreLimits limits) =>
        request.CalculateSize() > limits.RequestSizeBytesMax ? EtcdError.RequestTooLarge : null;

    private static EtcdError? CheckTxnSizes(TxnRequest r, CoreLimits limits)
    {
        foreach (var c in r.Compare)
        {
            if (c.Key.Length > limits.KeySizeBytesMax || c.RangeEnd.Length > limits.KeySizeBytesMax ||
                (c.TargetUnionCase == Compare.TargetUnionOneofCase.Value && c.Value.Length > limits.ValueSizeBytesMax))
            {
                return EtcdError.RequestTooLarge;
            }
        }

        foreach (var op in r.Success.Concat(r.Failure))
        {
            var error = op.RequestCase switch
            {
                RequestOp.RequestOneofCase.RequestRange => CheckRangeSize(op.RequestRange, limits),
                RequestOp.RequestOneofCase.RequestPut => CheckPutSize(op.RequestPut, limits),
                RequestOp.RequestOneofCase.RequestDeleteRange => CheckDeleteSize(op.RequestDeleteRange, limits),
                RequestOp.RequestOneofCase.RequestTxn => CheckTxnSizes(op.RequestTxn, limits),
                _ => null,
            };
            if (error != null)
            {
                return error;
            }
        }

        return null;
    }
}
