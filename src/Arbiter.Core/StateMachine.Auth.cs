using Arbiter.Core.Auth;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    private const Permission.Types.Type Read = Permission.Types.Type.Read;
    private const Permission.Types.Type Write = Permission.Types.Type.Write;

    /// <summary>
    /// The auth store (users, roles, enabled flag, auth revision, simple tokens). Read it under the
    /// same exclusion as other reads; it changes only through <see cref="Apply"/>.
    /// </summary>
    public AuthStore Auth { get; }

    /// <summary>
    /// etcd's checkTxnAuth: READ on every compare's keys, and each op of both branches (nested txns
    /// too) as the op needs: READ for a range, WRITE for a put or delete, READ as well with prev_kv.
    /// Null when allowed (or auth is off).
    /// </summary>
    public EtcdError? CheckTxnPermission(string? user, ulong authRevision, TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!Auth.Enabled)
        {
            return null;
        }

        foreach (var compare in request.Compare)
        {
            if (Auth.CheckKeys(user, authRevision, compare.Key, compare.RangeEnd, Read) is { } error)
            {
                return error;
            }
        }

        return CheckOpsPermission(user, authRevision, request.Success) ?? CheckOpsPermission(user, authRevision, request.Failure);
    }

    /// <summary>READ on [key, rangeEnd) for <paramref name="user"/>; null when allowed (or auth is off).</summary>
    public EtcdError? CheckRangePermission(string? user, ulong authRevision, ByteString key, ByteString rangeEnd) =>
        Auth.CheckKeys(user, authRevision, key, rangeEnd, Read);

    private EtcdError? CheckOpsPermission(string? user, ulong authRevision, IEnumerable<RequestOp> ops)
    {
        foreach (var op in ops)
        {
            var error = op.RequestCase switch
            {
                RequestOp.RequestOneofCase.RequestRange => Auth.CheckKeys(user, authRevision, op.RequestRange.Key, op.RequestRange.RangeEnd, Read),
                RequestOp.RequestOneofCase.RequestPut => CheckPutPermission(user, authRevision, op.RequestPut, checkLease: false),
                RequestOp.RequestOneofCase.RequestDeleteRange => CheckDeletePermission(user, authRevision, op.RequestDeleteRange),
                RequestOp.RequestOneofCase.RequestTxn => CheckTxnPermission(user, authRevision, op.RequestTxn),
                _ => null,
            };
            if (error is not null)
            {
                return error;
            }
        }

        return null;
    }

    private EtcdError? CheckPutPermission(string? user, ulong authRevision, PutRequest put, bool checkLease)
    {
        if (Auth.CheckKeys(user, authRevision, put.Key, ByteString.Empty, Write) is { } error)
        {
            return error;
        }

        // etcd: a lease whose keys this user cannot write cannot be attached (nor then revoked).
        if (checkLease && CheckLeaseKeysPermission(user, authRevision, put.Lease) is { } leaseError)
        {
            return leaseError;
        }

        return put.PrevKv ? Auth.CheckKeys(user, authRevision, put.Key, ByteString.Empty, Read) : null;
    }

    private EtcdError? CheckDeletePermission(string? user, ulong authRevision, DeleteRangeRequest delete) =>
        Auth.CheckKeys(user, authRevision, delete.Key, delete.RangeEnd, Write)
        ?? (delete.PrevKv ? Auth.CheckKeys(user, authRevision, delete.Key, delete.RangeEnd, Read) : null);

    private EtcdError? CheckLeaseKeysPermission(string? user, ulong authRevision, long leaseId)
    {
        if (leaseId == 0 || !_leases.TryGetValue(leaseId, out var lease))
        {
            return null;
        }

        foreach (var record in lease.Keys)
        {
            if (Auth.CheckKeys(user, authRevision, record.Key, ByteString.Empty, Write) is { } error)
            {
                return error;
            }
        }

        return null;
    }

    /// <summary>
    /// The permission check of a command at apply, for the user it carries (etcd's auth applier):
    /// KV writes and txns by their keys; lease revoke by the attached keys; auth changes root only;
    /// arbiter.v1 transactions by the keys they lock, read and write. Internal commands (expiry,
    /// promotion, timers, compaction, alarms, lease grants and renewals) are not checked, as in etcd.
    /// </summary>
    private void CheckCommandPermission(Command command)
    {
        if (!Auth.Enabled)
        {
            return;
        }

        var user = command.AuthUser;
        var revision = command.AuthRevision;
        var error = command.OpCase switch
        {
            Command.OpOneofCase.Put => CheckPutPermission(user, revision, command.Put, checkLease: true),
            Command.OpOneofCase.DeleteRange => CheckDeletePermission(user, revision, command.DeleteRange),
            Command.OpOneofCase.Txn => CheckTxnPermission(user, revision, command.Txn),
            Command.OpOneofCase.LeaseRevoke => CheckLeaseKeysPermission(user, revision, command.LeaseRevoke.ID),
            Command.OpOneofCase.TxnBegin => CheckAuthenticated(user, revision) ?? CheckLockTargetsPermission(user, revision, command.TxnBegin.Locks),
            Command.OpOneofCase.TxnAbort => CheckAuthenticated(user, revision),
            Command.OpOneofCase.TxnLock => CheckLockTargetsPermission(user, revision, Transactions.LockTargets.Of(command.TxnLock)),
            Command.OpOneofCase.TxnCommit => CheckAuthenticated(user, revision) ?? CheckOpsPermission(user, revision, command.TxnCommit.Writes),
            Command.OpOneofCase.TxnOptimisticCommit => CheckOptimisticPermission(user, revision, command.TxnOptimisticCommit),
            _ => null,
        };
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }

    /// <summary>Every lock target by its key or range: X needs write permission, S read permission.</summary>
    private EtcdError? CheckLockTargetsPermission(string? user, ulong revision, IEnumerable<LockTarget> targets)
    {
        foreach (var target in targets)
        {
            if (Auth.CheckKeys(user, revision, target.Key, target.RangeEnd, target.Mode == LockMode.Exclusive ? Write : Read) is { } error)
            {
                return error;
            }
        }

        return null;
    }

    private EtcdError? CheckAuthenticated(string? user, ulong revision)
    {
        if (string.IsNullOrEmpty(user) || revision == 0)
        {
            return AuthErrors.UserEmpty;
        }

        if (revision < Auth.Revision)
        {
            return AuthErrors.AuthOldRevision;
        }

        return Auth.FindUser(user) is null ? AuthErrors.PermissionDenied : null;
    }

    private EtcdError? CheckOptimisticPermission(string? user, ulong revision, OptimisticCommitRequest request)
    {
        if (CheckAuthenticated(user, revision) is { } error)
        {
            return error;
        }

        foreach (var read in request.Reads)
        {
            if (Auth.CheckKeys(user, revision, read.Key, read.RangeEnd, Read) is { } readError)
            {
                return readError;
            }
        }

        return CheckOpsPermission(user, revision, request.Writes);
    }
}
