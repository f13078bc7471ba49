using Arbiter.Protocol.Transactions;
using Google.Protobuf;

namespace Arbiter.Core.Transactions;

/// <summary>
/// The lock targets of a Lock or a Begin (the first target in the request's own fields, then
/// <c>more</c>; Begin's <c>locks</c>) and their stateless checks. Run at the API edge before
/// anything is proposed, and again by the core when applying, so a bad target is refused before
/// any lock changes.
/// </summary>
public static class LockTargets
{
    /// <summary>Every target of a Lock request, in the caller's order.</summary>
    public static IReadOnlyList<LockTarget> Of(LockRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var targets = new List<LockTarget>(1 + request.More.Count)
        {
            new() { Key = request.Key, RangeEnd = request.RangeEnd, Mode = request.Mode },
        };
        targets.AddRange(request.More);
        return targets;
    }

    /// <summary>Checks a Lock (every target, the wait policy, the timeout, the count); null when valid.</summary>
    public static EtcdError? Validate(LockRequest request, CoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        return Validate(Of(request), request.WaitPolicy, request.WaitTimeoutMs, limits);
    }

    /// <summary>Checks the locks a Begin carries (none is valid); null when valid.</summary>
    public static EtcdError? Validate(BeginRequest request, CoreLimits limits)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(limits);
        if (request.Locks.Count == 0)
        {
            return request.LockWaitPolicy != WaitPolicy.Block || request.LockWaitTimeoutMs != 0
                ? TransactionErrors.Invalid("lock_wait_policy and lock_wait_timeout_ms need locks")
                : null;
        }

        if (request.Snapshot)
        {
            return TransactionErrors.Invalid("a snapshot transaction takes no locks");
        }

        return Validate(request.Locks, request.LockWaitPolicy, request.LockWaitTimeoutMs, limits);
    }

    private static EtcdError? Validate(IReadOnlyList<LockTarget> targets, WaitPolicy waitPolicy, long waitTimeoutMs, CoreLimits limits)
    {
        if (waitTimeoutMs < 0 || waitTimeoutMs > limits.LockWaitTimeoutMsMax)
        {
            return TransactionErrors.Invalid($"wait_timeout_ms must be between 0 and {limits.LockWaitTimeoutMsMax}");
        }

        if (waitPolicy is not (WaitPolicy.Block or WaitPolicy.Nowait))
        {
            return TransactionErrors.Invalid($"unknown wait policy {(int)waitPolicy}");
        }

        if (targets.Count > limits.LocksPerTransactionMax)
        {
            return TransactionErrors.LimitReached($"too many lock targets in one request: {targets.Count} (limit {limits.LocksPerTransactionMax} locks per transaction)");
        }

        for (var i = 0; i < targets.Count; i++)
        {
            var t = targets[i];
            if (t.Key.IsEmpty)
            {
                return EtcdError.EmptyKey;
            }

            var where = targets.Count > 1 ? $" (lock target {i + 1} of {targets.Count})" : "";
            if (!t.RangeEnd.IsEmpty && !IsToEnd(t.RangeEnd) && Mvcc.KeyComparer.CompareKeys(t.RangeEnd, t.Key) <= 0)
            {
                return TransactionErrors.Invalid("range_end must be greater than key (the range is empty or inverted)" + where);
            }

            if (t.Mode is not (LockMode.Shared or LockMode.Exclusive))
            {
                return TransactionErrors.Invalid($"unknown lock mode {(int)t.Mode}" + where);
            }
        }

        return null;
    }

    private static bool IsToEnd(ByteString rangeEnd) => rangeEnd.Length == 1 && rangeEnd[0] == 0;
}
