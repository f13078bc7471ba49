using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Transactions;
using Arbiter.Recipes.Diagnostics;
using Grpc.Core;

namespace Arbiter.Recipes.Transactions;

/// <summary>Options of a <see cref="TransactionClient"/>.</summary>
public sealed record TransactionClientOptions
{
    /// <summary>
    /// The session (lease) pessimistic transactions live under. Null: the client creates its own,
    /// with <see cref="SessionTtl"/>, and a new one if it is lost.
    /// </summary>
    public Session? Session { get; init; }

    /// <summary>TTL of the client's own session: how long a crashed client's locks outlive it.</summary>
    public TimeSpan SessionTtl { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The retry policy when a call passes none.</summary>
    public RetryPolicy RetryPolicy { get; init; } = RetryPolicy.Default;
}

/// <summary>
/// Transactions over an <see cref="ArbiterClient"/> (embedded node, server, or cluster alike):
/// pessimistic and optimistic interactive transactions, a retry loop, a compare-and-swap update,
/// etcd-compatible STM and snapshot reads. Against a real etcd, what etcd can do runs (STM,
/// <see cref="UpdateAsync"/>, optimistic transactions through Txn compares) and the rest throws
/// <see cref="NotSupportedException"/> naming the feature.
/// </summary>
public sealed class TransactionClient : IAsyncDisposable
{
    private const int ReattachAttemptsMax = 40;

    // etcd's text for an unknown lease (the client package does not carry the server's error table).
    private const string LeaseNotFoundDetail = "etcdserver: requested lease not found";

    private readonly TransactionClientOptions _options;
    private readonly SemaphoreSlim _sessionGate = new(1, 1);
    private readonly RetryBudget _budget = new();
    private Session? _ownSession;
    private ArbiterClient? _kv;

    /// <summary>Creates the client over <paramref name="client"/> (not owned).</summary>
    public TransactionClient(ArbiterClient client, TransactionClientOptions? options = null)
    {
        Client = client ?? throw new ArgumentNullException(nameof(client));
        _options = options ?? new TransactionClientOptions();
    }

    /// <summary>The client calls go through.</summary>
    public ArbiterClient Client { get; }

    /// <summary>Commits, retries, deadlocks, conflicts, lock timeouts seen by this client.</summary>
    public TransactionMetrics Metrics { get; } = new();

    /// <summary>
    /// The client a transaction's reads and key-value Txns go through: over gRPC, the view that
    /// carries them on the transaction session stream with the transaction calls.
    /// </summary>
    internal ArbiterClient Kv => LazyInitializer.EnsureInitialized(ref _kv, () =>
        Client.Raw is ITransactionsClient raw && !ReferenceEquals(raw.KvForTransactions, Client.Raw)
            ? new ArbiterClient(raw.KvForTransactions, Client.Options, ownsRaw: false)
            : Client);

    internal ITransactionsClient Raw => Client.Raw as ITransactionsClient
        ?? throw new NotSupportedException($"Transactions need a client that speaks arbiter.v1 ({Client.Raw.GetType().Name} does not).");

    /// <summary>Set once a call found no arbiter.v1 service (a real etcd): optimistic commits then use Txn compares.</summary>
    internal bool IsEtcdBackend { get; set; }

    /// <summary>Begins a transaction (pessimistic by default).</summary>
    public async Task<Transaction> BeginTransactionAsync(TransactionOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new TransactionOptions();
        if (options.Mode == TransactionMode.Optimistic)
        {
            if (options.Locks is { Count: > 0 })
            {
                throw new ArgumentException("TransactionOptions.Locks belong to pessimistic transactions; an optimistic one validates at commit instead.", nameof(options));
            }

            return new Transaction(this, options, 0, 0);
        }

        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.transaction.begin");
        activity?.SetTag("arbiter.transaction.mode", "pessimistic");
        try
        {
            var transaction = await BeginPessimisticAsync(options, cancellationToken).ConfigureAwait(false);
            activity?.SetTag("arbiter.transaction.id", transaction.Id);
            activity?.SetTag("arbiter.transaction.age", transaction.Age);
            return transaction;
        }
        catch (Exception e)
        {
            RecipeTelemetry.Fail(activity, e);
            throw;
        }
    }

    private async Task<Transaction> BeginPessimisticAsync(TransactionOptions options, CancellationToken cancellationToken)
    {

        if (IsEtcdBackend)
        {
            throw Unsupported("Pessimistic transactions (the lock table)");
        }

        // One key for every repetition of this Begin: a repeat whose first answer was lost (its
        // member died) finds the same transaction instead of leaving one behind holding locks.
        var idempotencyKey = Google.Protobuf.ByteString.CopyFrom(Guid.NewGuid().ToByteArray());
        var response = await BeginOnSessionAsync(
            lease =>
            {
                var request = new BeginRequest { Lease = lease, Age = options.Age, TimeLimitMs = (long)(options.TimeLimit ?? TimeSpan.Zero).TotalMilliseconds, IdempotencyKey = idempotencyKey };
                if (options.Locks is { Count: > 0 } locks)
                {
                    request.Locks.AddRange(locks);
                    request.LockWaitPolicy = options.BeginLockOptions?.NoWait == true ? WaitPolicy.Nowait : WaitPolicy.Block;
                    request.LockWaitTimeoutMs = (long)(options.BeginLockOptions?.Timeout ?? options.LockTimeout ?? TimeSpan.Zero).TotalMilliseconds;
                    request.ReadLockedKeys = options.ReadLockedKeys;
                }

                return request;
            },
            "Pessimistic transactions (the lock table)",
            cancellationToken).ConfigureAwait(false);
        var transaction = new Transaction(this, options, response.TxnId, response.Age, [.. response.FencingTokens]);
        if (options.Locks is { } taken)
        {
            transaction.KnowLockedValues(taken, response.LockedKeysRead, response.Kvs);
        }

        return transaction;
    }

    /// <summary>
    /// Runs <paramref name="body"/> in a transaction and commits it, retrying the whole body on a
    /// retryable <see cref="TransactionException"/> (deadlock victim, conflict, lock timeout, busy,
    /// expired) with full-jitter backoff, the policy's attempt limit and the shared retry budget. A
    /// retried pessimistic transaction keeps its first attempt's age, so it cannot starve. The last
    /// failure is thrown when the attempts or the budget run out.
    /// </summary>
    public async Task<T> RunTransactionAsync<T>(Func<Transaction, CancellationToken, Task<T>> body, RetryPolicy? policy = null, TransactionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        policy ??= _options.RetryPolicy;
        options ??= new TransactionOptions();
        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.transaction.run");
        activity?.SetTag("arbiter.transaction.mode", options.Mode == TransactionMode.Pessimistic ? "pessimistic" : "optimistic");
        try
        {
            var result = await RunAttemptsAsync(body, policy, options, activity, cancellationToken).ConfigureAwait(false);
            activity?.SetTag("arbiter.transaction.outcome", "committed");
            return result;
        }
        catch (Exception e)
        {
            activity?.SetTag("arbiter.transaction.outcome", RecipeTelemetry.TransactionOutcomeOf(e));
            RecipeTelemetry.Fail(activity, e);
            throw;
        }
    }

    private async Task<T> RunAttemptsAsync<T>(Func<Transaction, CancellationToken, Task<T>> body, RetryPolicy policy, TransactionOptions options, System.Diagnostics.Activity? activity, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            activity?.SetTag("arbiter.transaction.attempts", attempt);
            Transaction txn;
            try
            {
                txn = await BeginTransactionAsync(options, cancellationToken).ConfigureAwait(false);
            }
            catch (TransactionException e) when (e.IsRetryable && options.Locks is { Count: > 0 })
            {
                // A Begin carrying locks can fail like a lock call (deadlock victim, lock timeout,
                // busy); the server has rolled it back, so the attempt is retried like a failed body.
                if (!MayRetry(e, attempt, policy, activity))
                {
                    throw;
                }

                if (options.Age == 0 && e is DeadlockException && e.TransactionId > 0)
                {
                    options = options with { Age = e.TransactionId };   // a new transaction's age is its id
                }

                Metrics.Retried();
                await Task.Delay(policy.Backoff(attempt, Random.Shared), cancellationToken).ConfigureAwait(false);
                continue;
            }

            await using (txn.ConfigureAwait(false))
            {
                try
                {
                    var result = await body(txn, cancellationToken).ConfigureAwait(false);
                    await txn.CommitAsync(cancellationToken).ConfigureAwait(false);
                    Metrics.Committed();
                    _budget.Earn(policy);
                    return result;
                }
                catch (TransactionException e) when (e.IsRetryable)
                {
                    if (!MayRetry(e, attempt, policy, activity))
                    {
                        throw;
                    }
                }
            }

            Metrics.Retried();
            if (options.Mode == TransactionMode.Pessimistic && options.Age == 0)
            {
                options = options with { Age = txn.Age };
            }

            await Task.Delay(policy.Backoff(attempt, Random.Shared), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Counts a failed attempt and says whether the policy and the retry budget allow another.</summary>
    private bool MayRetry(TransactionException e, int attempt, RetryPolicy policy, System.Diagnostics.Activity? activity)
    {
        Metrics.Failed(e);
        activity?.AddEvent(new System.Diagnostics.ActivityEvent("retry", tags: new System.Diagnostics.ActivityTagsCollection
        {
            ["arbiter.retry.attempt"] = attempt,
            ["arbiter.transaction.outcome"] = RecipeTelemetry.TransactionOutcomeOf(e),
        }));
        if (attempt >= policy.MaxAttempts)
        {
            return false;
        }

        if (!_budget.TrySpend(policy))
        {
            Metrics.Exhausted();
            return false;
        }

        return true;
    }

    /// <summary>Runs <paramref name="body"/> in a transaction (see the generic overload).</summary>
    public Task RunTransactionAsync(Func<Transaction, CancellationToken, Task> body, RetryPolicy? policy = null, TransactionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunTransactionAsync<bool>(
            async (t, ct) =>
            {
                await body(t, ct).ConfigureAwait(false);
                return true;
            },
            policy,
            options,
            cancellationToken);
    }

    /// <summary>
    /// Compare-and-swap loop: reads <paramref name="key"/>, computes the new value (null deletes),
    /// and writes it only if the key's mod revision is unchanged; retries with backoff otherwise.
    /// Plain etcd Txn: runs unchanged against real etcd. Returns the value written.
    /// </summary>
    public async Task<string?> UpdateAsync(string key, Func<string?, string?> update, RetryPolicy? policy = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(update);
        policy ??= _options.RetryPolicy;
        var k = Transaction.Bytes(key);
        for (var attempt = 1; ; attempt++)
        {
            var current = await Kv.RangeAsync(new RangeRequest { Key = k }, cancellationToken).ConfigureAwait(false);
            var kv = current.Kvs.Count == 0 ? null : current.Kvs[0];
            var next = update(kv?.Value.ToStringUtf8());
            var txn = new TxnRequest();
            txn.Compare.Add(new Compare { Key = k, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = kv?.ModRevision ?? 0 });
            txn.Success.Add(next is null
                ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = k } }
                : new RequestOp { RequestPut = new PutRequest { Key = k, Value = Transaction.Bytes(next) } });
            var response = await Kv.TxnAsync(txn, cancellationToken).ConfigureAwait(false);
            if (response.Succeeded)
            {
                Metrics.Committed();
                RecipeTelemetry.Committed("cas");
                _budget.Earn(policy);
                return next;
            }

            Metrics.Failed(new ConflictException("", null));
            RecipeTelemetry.Aborted("cas", new ConflictException("", null));
            if (attempt >= policy.MaxAttempts || !_budget.TrySpend(policy))
            {
                throw new ConflictException($"update of \"{key}\" lost the race {attempt} times; giving up", null);
            }

            Metrics.Retried();
            await Task.Delay(policy.Backoff(attempt, Random.Shared), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> as software transactional memory with etcd clientv3's semantics
    /// for <paramref name="isolation"/> (see <see cref="Stm"/>), retrying on conflict under the
    /// retry policy (etcd retries forever, without backoff). Plain etcd KV calls: runs unchanged
    /// against real etcd. Returns the commit's Txn response.
    /// </summary>
    public async Task<TxnResponse> AtomicallyAsync(Func<Stm, CancellationToken, Task> body, StmIsolation isolation = StmIsolation.SerializableSnapshot, RetryPolicy? policy = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        policy ??= _options.RetryPolicy;
        var stm = new Stm(Kv, isolation);
        for (var attempt = 1; ; attempt++)
        {
            stm.Reset();
            await body(stm, cancellationToken).ConfigureAwait(false);
            if (await stm.CommitAsync(cancellationToken).ConfigureAwait(false) is { } committed)
            {
                Metrics.Committed();
                RecipeTelemetry.Committed("stm");
                _budget.Earn(policy);
                return committed;
            }

            Metrics.Failed(new ConflictException("", null));
            RecipeTelemetry.Aborted("stm", new ConflictException("", null));
            if (attempt >= policy.MaxAttempts || !_budget.TrySpend(policy))
            {
                throw new ConflictException($"STM transaction conflicted {attempt} times; giving up", null);
            }

            Metrics.Retried();
            var backoff = policy.Backoff(attempt, Random.Shared);
            if (backoff > TimeSpan.Zero)
            {
                await Task.Delay(backoff, cancellationToken).ConfigureAwait(false);
                stm.ForgetPrefetch();   // read afresh after waiting (see Stm.ForgetPrefetch)
            }
        }
    }

    /// <summary>
    /// Opens a read-only snapshot: every read sees one revision, which the server keeps from
    /// compaction until the snapshot is disposed (or its lease or time limit ends it).
    /// </summary>
    public async Task<ReadSnapshot> OpenSnapshotAsync(TimeSpan? timeLimit = null, CancellationToken cancellationToken = default)
    {
        if (IsEtcdBackend)
        {
            throw Unsupported("Snapshot transactions (a revision pinned against compaction)");
        }

        var response = await BeginOnSessionAsync(
            lease => new BeginRequest { Lease = lease, Snapshot = true, TimeLimitMs = (long)(timeLimit ?? TimeSpan.Zero).TotalMilliseconds },
            "Snapshot transactions (a revision pinned against compaction)",
            cancellationToken).ConfigureAwait(false);
        return new ReadSnapshot(this, response.TxnId, response.SnapshotRevision);
    }

    /// <summary>Open transactions, locks and waiters (who waits on whom) and the server's counters.</summary>
    public Task<TransactionStatusResponse> StatusAsync(CancellationToken cancellationToken = default) =>
        CallAsync(ct => Raw.TxnStatusAsync(ct), "Transaction status", reattach: true, cancellationToken);

    /// <summary>Revokes the client's own session (releasing whatever its transactions still hold).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_ownSession is { } session)
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }

        _sessionGate.Dispose();
    }

    /// <summary>
    /// One arbiter.v1 call with its errors typed. With <paramref name="reattach"/>, a call that
    /// failed in transport (Unavailable: its member died or a leader changed) is repeated, which
    /// the server makes safe (a queued lock re-attaches, a commit is remembered by transaction id
    /// or idempotency key).
    /// </summary>
    internal async Task<T> CallAsync<T>(Func<CancellationToken, Task<T>> call, string feature, bool reattach, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call(cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (reattach && attempt < ReattachAttemptsMax && !cancellationToken.IsCancellationRequested
                && e.StatusCode == StatusCode.Unavailable)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(500, 25 * attempt)), cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (TransactionException.FromRpc(e, feature) is { } typed)
            {
                if (typed is NotSupportedException)
                {
                    IsEtcdBackend = true;
                }

                throw typed;
            }
        }
    }

    private static NotSupportedException Unsupported(string feature) =>
        new($"{feature} needs an Arbiter server (arbiter.v1.Transactions); this endpoint does not serve it (a real etcd?).");

    /// <summary>
    /// Begin on the session's lease. When the client's own session turns out to be gone on the
    /// server (its lease expired before the keep-alive loop noticed: keep-alives starved on a
    /// loaded machine, or cut off by a leader change for longer than the TTL), the session is
    /// replaced and Begin is sent once more on the new one; a session the caller passed in is never
    /// replaced (its owner decides), so the error goes through.
    /// </summary>
    private async Task<BeginResponse> BeginOnSessionAsync(Func<long, BeginRequest> request, string feature, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var lease = await LeaseAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await CallAsync(ct => Raw.TxnBeginAsync(request(lease), ct), feature, reattach: true, cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (attempt < 2 && _options.Session is null && e.StatusCode == StatusCode.NotFound
                && e.Status.Detail == LeaseNotFoundDetail)
            {
                await ForgetOwnSessionAsync(lease, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Drops the client's own session if it is still the one with <paramref name="lease"/> (the next call makes a new one).</summary>
    private async Task ForgetOwnSessionAsync(long lease, CancellationToken cancellationToken)
    {
        await _sessionGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_ownSession is { } session && session.LeaseId == lease)
            {
                _ownSession = null;
                await session.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _sessionGate.Release();
        }
    }

    private async Task<long> LeaseAsync(CancellationToken cancellationToken)
    {
        if (_options.Session is { } shared)
        {
            return shared.LeaseId;
        }

        await _sessionGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_ownSession is null || _ownSession.IsLost)
            {
                if (_ownSession is { } lost)
                {
                    await lost.DisposeAsync().ConfigureAwait(false);
                }

                _ownSession = await Client.CreateSessionAsync(_options.SessionTtl, cancellationToken).ConfigureAwait(false);
            }

            return _ownSession.LeaseId;
        }
        finally
        {
            _sessionGate.Release();
        }
    }
}

/// <summary>A read-only snapshot: all reads at <see cref="Revision"/>, pinned against compaction until disposed.</summary>
public sealed class ReadSnapshot : IAsyncDisposable
{
    private readonly TransactionClient _owner;
    private readonly long _txnId;
    private int _disposed;

    internal ReadSnapshot(TransactionClient owner, long txnId, long revision)
    {
        _owner = owner;
        _txnId = txnId;
        Revision = revision;
    }

    /// <summary>The revision every read sees.</summary>
    public long Revision { get; }

    /// <summary>A key's value at <see cref="Revision"/> (null if absent then).</summary>
    public async Task<string?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        var response = await _owner.Kv.RangeAsync(new RangeRequest { Key = Transaction.Bytes(key), Revision = Revision }, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? null : response.Kvs[0].Value.ToStringUtf8();
    }

    /// <summary>Every key with <paramref name="prefix"/> at <see cref="Revision"/>.</summary>
    public async Task<IReadOnlyList<Protocol.Mvcc.KeyValue>> GetPrefixAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var start = Transaction.Bytes(prefix);
        var response = await _owner.Kv.RangeAsync(new RangeRequest { Key = start, RangeEnd = Arbiter.Protocol.KeyRanges.PrefixEnd(start), Revision = Revision }, cancellationToken).ConfigureAwait(false);
        return response.Kvs;
    }

    /// <summary>Ends the snapshot (unpins its revision).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _owner.CallAsync(ct => _owner.Raw.TxnCommitAsync(new CommitRequest { TxnId = _txnId }, ct), "Snapshot transactions", reattach: true, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or TransactionException)
        {
            // Ended already (lease, time limit) or unreachable: the pin goes with the lease.
        }
    }
}
