using Arbiter.Core.Mvcc;
using Arbiter.Protocol;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    /// <summary>True when every op in both branches is a Range (etcd's isTxnReadonly).</summary>
    public static bool IsReadOnlyTxn(TxnRequest request) => TxnRequests.IsReadOnly(request);

    /// <summary>
    /// Serves a read-only txn (see <see cref="IsReadOnlyTxn"/>) without a command, as etcd serves
    /// them outside the log. Throws <see cref="EtcdException"/>; <see cref="ArgumentException"/> if it writes.
    /// </summary>
    public TxnResponse ReadOnlyTxn(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!IsReadOnlyTxn(request))
        {
            throw new ArgumentException("The txn has write operations; propose it as a command.", nameof(request));
        }

        ThrowIfInvalid(RequestValidator.Validate(request, Limits));
        var events = new List<Event>();
        var ctx = BeginWrite(events);
        var response = ExecuteTxn(request, ctx, isWrite: false);
        if (ctx.Changes != 0)
        {
            throw new InvalidOperationException("A read-only txn changed state.");
        }

        return response;
    }

    private TxnResponse ApplyTxn(TxnRequest request, List<Event> events)
    {
        ThrowIfInvalid(RequestValidator.Validate(request, Limits));
        var isWrite = !IsReadOnlyTxn(request);
        if (isWrite)
        {
            // etcd serves read-only txns from its base applier, which the CORRUPT alarm does not replace.
            ThrowIfCorrupt();
        }

        var cost = TxnCost(request);
        if (cost > 0 && IsAlarmActive(AlarmType.Nospace))
        {
            throw new EtcdException(EtcdError.NoSpace);
        }

        var ctx = BeginWrite(events);
        var response = ExecuteTxn(request, ctx, isWrite, cost);
        Commit(ctx);
        response.Header = Header(_revision);
        return response;
    }

    /// <summary>etcd's txn cost: the larger of the two branches' top-level puts.</summary>
    private static long TxnCost(TxnRequest request)
    {
        long success = 0, failure = 0;
        foreach (var op in request.Success)
        {
            if (op.RequestCase == RequestOp.RequestOneofCase.RequestPut)
            {
                success += PutCost(op.RequestPut);
            }
        }

        foreach (var op in request.Failure)
        {
            if (op.RequestCase == RequestOp.RequestOneofCase.RequestPut)
            {
                failure += PutCost(op.RequestPut);
            }
        }

        return Math.Max(success, failure);
    }

    /// <summary>
    /// Evaluates every compare (nested ones too) against the state before the txn, checks the chosen
    /// ops, then applies them. Anything that can fail fails before the first write.
    /// </summary>
    private TxnResponse ExecuteTxn(TxnRequest request, WriteContext ctx, bool isWrite, long cost = 0)
    {
        var path = new List<bool>();
        ComputePath(request, path);

        if (isWrite)
        {
            var cursor = 0;
            var deletesSoFar = new List<(ByteString Start, ByteString End)>();
            CheckPuts(request, path, ref cursor, deletesSoFar);
        }

        var rangeCursor = 0;
        CheckRanges(request, path, ref rangeCursor);
        CheckQuota(cost);

        var applyCursor = 0;
        var response = ApplyOps(request, path, ref applyCursor, ctx);
        response.Header = Header(ctx.ViewRevision);
        return response;
    }

    private void ComputePath(TxnRequest t, List<bool> path)
    {
        var succeeded = true;
        foreach (var c in t.Compare)
        {
            if (!EvaluateCompare(c))
            {
                succeeded = false;
                break;
            }
        }

        path.Add(succeeded);
        foreach (var op in succeeded ? t.Success : t.Failure)
        {
            if (op.RequestCase == RequestOp.RequestOneofCase.RequestTxn)
            {
                ComputePath(op.RequestTxn, path);
            }
        }
    }

    /// <summary>
    /// etcd's compare: every key in range must match; with no key, a VALUE compare fails and the
    /// others compare against a zero key-value (version, revisions and lease 0).
    /// </summary>
    private bool EvaluateCompare(Compare c)
    {
        var any = false;
        foreach (var record in RecordsInRange(c.Key, c.RangeEnd))
        {
            var kv = record.At(_revision);
            if (kv == null)
            {
                continue;
            }

            any = true;
            if (!CompareKv(c, kv))
            {
                return false;
            }
        }

        if (!any)
        {
            return c.Target != Compare.Types.CompareTarget.Value && CompareKv(c, ZeroKv);
        }

        return true;
    }

    private static readonly KeyValue ZeroKv = new();

    private static bool CompareKv(Compare c, KeyValue kv)
    {
        // A target_union case that does not match the target counts as zero / empty, as in etcd.
        var result = c.Target switch
        {
            Compare.Types.CompareTarget.Value => kv.Value.Span.SequenceCompareTo(
                c.TargetUnionCase == Compare.TargetUnionOneofCase.Value ? c.Value.Span : []),
            Compare.Types.CompareTarget.Create => kv.CreateRevision.CompareTo(
                c.TargetUnionCase == Compare.TargetUnionOneofCase.CreateRevision ? c.CreateRevision : 0),
            Compare.Types.CompareTarget.Mod => kv.ModRevision.CompareTo(
                c.TargetUnionCase == Compare.TargetUnionOneofCase.ModRevision ? c.ModRevision : 0),
            Compare.Types.CompareTarget.Version => kv.Version.CompareTo(
                c.TargetUnionCase == Compare.TargetUnionOneofCase.Version ? c.Version : 0),
            Compare.Types.CompareTarget.Lease => kv.Lease.CompareTo(
                c.TargetUnionCase == Compare.TargetUnionOneofCase.Lease ? c.Lease : 0),
            _ => 0,
        };
        return c.Result switch
        {
            Compare.Types.CompareResult.Equal => result == 0,
            Compare.Types.CompareResult.NotEqual => result != 0,
            Compare.Types.CompareResult.Greater => result > 0,
            Compare.Types.CompareResult.Less => result < 0,
            _ => true,
        };
    }

    /// <summary>
    /// etcd's checkRequestPut over the chosen path: ignore_* needs an existing key, a lease must
    /// exist. One addition: an ignore_* put after a delete of its key in the same txn (possible only
    /// through a "\0" range_end, which etcd's duplicate check misses) is refused with KeyNotFound;
    /// etcd would panic applying it.
    /// </summary>
    private void CheckPuts(TxnRequest t, List<bool> path, ref int cursor, List<(ByteString Start, ByteString End)> deletes)
    {
        var succeeded = path[cursor++];
        foreach (var op in succeeded ? t.Success : t.Failure)
        {
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestTxn:
                    CheckPuts(op.RequestTxn, path, ref cursor, deletes);
                    break;
                case RequestOp.RequestOneofCase.RequestDeleteRange:
                    deletes.Add((op.RequestDeleteRange.Key, op.RequestDeleteRange.RangeEnd));
                    break;
                case RequestOp.RequestOneofCase.RequestPut:
                    var p = op.RequestPut;
                    if (p.IgnoreValue || p.IgnoreLease)
                    {
                        if (_index.Get(p.Key) is not { IsLive: true } || deletes.Exists(d => Covers(d.Start, d.End, p.Key)))
                        {
                            throw new EtcdException(EtcdError.KeyNotFound);
                        }
                    }

                    if (p.Lease != 0 && !_leases.ContainsKey(p.Lease))
                    {
                        throw new EtcdException(EtcdError.LeaseNotFound);
                    }

                    break;
                default:
                    break;
            }
        }
    }

    private static bool Covers(ByteString start, ByteString end, ByteString key)
    {
        if (end.IsEmpty)
        {
            return start.Equals(key);
        }

        return KeyComparer.CompareKeys(start, key) <= 0 && (end.Equals(GteRangeEnd) || KeyComparer.CompareKeys(key, end) < 0);
    }

    /// <summary>etcd's checkRequestRange: revision 0 is fine; above current is future; below the first revision is compacted.</summary>
    private void CheckRanges(TxnRequest t, List<bool> path, ref int cursor)
    {
        var succeeded = path[cursor++];
        foreach (var op in succeeded ? t.Success : t.Failure)
        {
            if (op.RequestCase == RequestOp.RequestOneofCase.RequestTxn)
            {
                CheckRanges(op.RequestTxn, path, ref cursor);
            }
            else if (op.RequestCase == RequestOp.RequestOneofCase.RequestRange)
            {
                var rev = op.RequestRange.Revision;
                if (rev == 0)
                {
                    continue;
                }

                if (rev > _revision)
                {
                    throw new EtcdException(EtcdError.FutureRevision);
                }

                // etcd compares with the store's first revision, -1 when never compacted.
                if (rev < _compactMainRev)
                {
                    throw new EtcdException(EtcdError.Compacted);
                }
            }
        }
    }

    private TxnResponse ApplyOps(TxnRequest t, List<bool> path, ref int cursor, WriteContext ctx)
    {
        var succeeded = path[cursor++];
        // Nested txn responses keep an empty header, as etcd leaves them.
        var response = new TxnResponse { Succeeded = succeeded, Header = new ResponseHeader() };
        foreach (var op in succeeded ? t.Success : t.Failure)
        {
            switch (op.RequestCase)
            {
                case RequestOp.RequestOneofCase.RequestRange:
                    response.Responses.Add(new ResponseOp { ResponseRange = RangeAt(op.RequestRange, ctx.ViewRevision) });
                    break;
                case RequestOp.RequestOneofCase.RequestPut:
                    response.Responses.Add(new ResponseOp { ResponsePut = Put(ctx, op.RequestPut) });
                    break;
                case RequestOp.RequestOneofCase.RequestDeleteRange:
                    response.Responses.Add(new ResponseOp { ResponseDeleteRange = DeleteRange(ctx, op.RequestDeleteRange) });
                    break;
                case RequestOp.RequestOneofCase.RequestTxn:
                    response.Responses.Add(new ResponseOp { ResponseTxn = ApplyOps(op.RequestTxn, path, ref cursor, ctx) });
                    break;
                default:
                    response.Responses.Add(new ResponseOp());
                    break;
            }
        }

        return response;
    }
}
