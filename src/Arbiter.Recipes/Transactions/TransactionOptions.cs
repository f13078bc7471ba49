using Arbiter.Protocol.Transactions;

namespace Arbiter.Recipes.Transactions;

/// <summary>How a transaction controls concurrency.</summary>
public enum TransactionMode
{
    /// <summary>Strict two-phase locking: reads take S locks, writes X locks (implicitly, or explicitly ahead), held to the end.</summary>
    Pessimistic,

    /// <summary>Reads at one revision, writes buffered, commit validated against everything read (ranges included).</summary>
    Optimistic,
}

/// <summary>Options of one transaction.</summary>
public sealed record TransactionOptions
{
    /// <summary>Pessimistic (default) or optimistic.</summary>
    public TransactionMode Mode { get; init; } = TransactionMode.Pessimistic;

    /// <summary>Time limit (null = the server's default); past it the server aborts the transaction.</summary>
    public TimeSpan? TimeLimit { get; init; }

    /// <summary>
    /// Pessimistic only: take S locks for reads and X locks for writes implicitly (default true,
    /// serializable). When false, only explicit locks are taken and reads see committed data.
    /// </summary>
    public bool ImplicitLocks { get; init; } = true;

    /// <summary>Lock-wait timeout of the implicit locks (null = the server's default).</summary>
    public TimeSpan? LockTimeout { get; init; }

    /// <summary>
    /// Pessimistic only: locks taken by Begin itself, in the same log command that opens the
    /// transaction, in this order (<see cref="LockTarget.Exclusive"/>, <see cref="LockTarget.Shared"/>;
    /// e.g. both accounts of a transfer, sorted). <c>BeginTransactionAsync</c> returns once every
    /// one is granted (tokens in <see cref="Transaction.BeginFencingTokens"/>), so a transaction
    /// that knows its keys up front costs two log commands (Begin, Commit) instead of one more per
    /// lock call. If a lock fails (busy under <see cref="BeginLockOptions"/> NoWait, lock timeout,
    /// deadlock victim) Begin throws and no transaction is left holding locks. Null or empty: Begin
    /// takes no locks (as before).
    /// </summary>
    public IReadOnlyList<LockTarget>? Locks { get; init; }

    /// <summary>
    /// Pessimistic only: every lock call (Begin's <see cref="Locks"/>, explicit and implicit locks)
    /// also brings back the current values of its single-key targets, read by the server once the
    /// locks are granted, so <see cref="Transaction.GetAsync(string, CancellationToken)"/> on a locked
    /// key answers without a round trip (as <c>SELECT … FOR UPDATE</c> returns its rows). Default
    /// true. False: reads always ask the server (a lock-only transaction then saves the read).
    /// Range locks are never read ahead.
    /// </summary>
    public bool ReadLockedKeys { get; init; } = true;

    /// <summary>How the <see cref="Locks"/> taken by Begin wait (null: block, with <see cref="LockTimeout"/>).</summary>
    public LockOptions? BeginLockOptions { get; init; }

    /// <summary>Internal: the age a retried transaction keeps (0 = new).</summary>
    internal long Age { get; init; }
}

/// <summary>How a lock request waits.</summary>
public sealed record LockOptions
{
    /// <summary>Fail at once with <see cref="LockBusyException"/> instead of waiting.</summary>
    public bool NoWait { get; init; }

    /// <summary>Lock-wait timeout (null = the server's default).</summary>
    public TimeSpan? Timeout { get; init; }
}

/// <summary>
/// Retries of <c>RunTransactionAsync</c>, <c>UpdateAsync</c> and <c>AtomicallyAsync</c>: full-jitter
/// exponential backoff (sleep uniformly in [0, min(MaxDelay, BaseDelay·2^attempt))), a retry limit,
/// and a retry budget shared by every caller of one <see cref="TransactionClient"/> (a token bucket:
/// each retry spends a token, each success earns back <see cref="BudgetRefillPerSuccess"/>), so that
/// retries are throttled when most attempts fail.
/// </summary>
public sealed record RetryPolicy
{
    /// <summary>The default policy.</summary>
    public static readonly RetryPolicy Default = new();

    /// <summary>Most attempts (the first included).</summary>
    public int MaxAttempts { get; init; } = 20;

    /// <summary>The first backoff ceiling.</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>The largest backoff ceiling.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Tokens in the shared retry budget when full.</summary>
    public double BudgetCapacity { get; init; } = 100;

    /// <summary>Tokens a successful attempt returns to the budget.</summary>
    public double BudgetRefillPerSuccess { get; init; } = 0.5;

    /// <summary>The full-jitter delay before retry number <paramref name="attempt"/> (1-based).</summary>
    public TimeSpan Backoff(int attempt, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var ceilingMs = Math.Min(MaxDelay.TotalMilliseconds, BaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30)));
        return TimeSpan.FromMilliseconds(random.NextDouble() * ceilingMs);
    }
}

/// <summary>Counters of one <see cref="TransactionClient"/> (thread-safe reads).</summary>
public sealed class TransactionMetrics
{
    private long _commits;
    private long _retries;
    private long _deadlocks;
    private long _conflicts;
    private long _lockTimeouts;
    private long _budgetExhausted;

    /// <summary>Transactions committed.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Attempts retried.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Deadlock aborts seen by this client's transactions.</summary>
    public long Deadlocks => Interlocked.Read(ref _deadlocks);

    /// <summary>Optimistic conflicts seen.</summary>
    public long Conflicts => Interlocked.Read(ref _conflicts);

    /// <summary>Lock-wait timeouts seen.</summary>
    public long LockTimeouts => Interlocked.Read(ref _lockTimeouts);

    /// <summary>Retries refused because the retry budget was empty.</summary>
    public long BudgetExhausted => Interlocked.Read(ref _budgetExhausted);

    internal void Committed() => Interlocked.Increment(ref _commits);

    internal void Retried() => Interlocked.Increment(ref _retries);

    internal void Exhausted() => Interlocked.Increment(ref _budgetExhausted);

    internal void Failed(Exception e)
    {
        switch (e)
        {
            case DeadlockException:
                Interlocked.Increment(ref _deadlocks);
                break;
            case ConflictException:
                Interlocked.Increment(ref _conflicts);
                break;
            case LockTimeoutException:
                Interlocked.Increment(ref _lockTimeouts);
                break;
        }
    }
}

/// <summary>The shared token bucket of a <see cref="RetryPolicy"/>.</summary>
internal sealed class RetryBudget
{
    private readonly Lock _gate = new();
    private double _tokens = double.NaN;

    public bool TrySpend(RetryPolicy policy)
    {
        lock (_gate)
        {
            if (double.IsNaN(_tokens))
            {
                _tokens = policy.BudgetCapacity;
            }

            if (_tokens < 1)
            {
                return false;
            }

            _tokens -= 1;
            return true;
        }
    }

    public void Earn(RetryPolicy policy)
    {
        lock (_gate)
        {
            _tokens = double.IsNaN(_tokens) ? policy.BudgetCapacity : Math.Min(policy.BudgetCapacity, _tokens + policy.BudgetRefillPerSuccess);
        }
    }
}
