using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Arbiter.Protocol.Transactions;
using Arbiter.Recipes.Diagnostics;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Recipes.Transactions;

/// <summary>
/// An interactive transaction. Pessimistic (strict 2PL): locks are taken on the server (reads take
/// S, writes X when <see cref="TransactionOptions.ImplicitLocks"/>; explicit locks with
/// <see cref="LockSharedAsync(string, string?, LockOptions?, CancellationToken)"/> /
/// <see cref="LockExclusiveAsync(string, string?, LockOptions?, CancellationToken)"/>), held until
/// <see cref="CommitAsync"/> or rollback. Optimistic: reads at one revision, writes buffered, the
/// commit validated on the server against every key and range read. Writes are buffered either way
/// and applied in one revision. <see cref="DisposeAsync"/> without a commit rolls back.
/// Not thread-safe: one caller at a time.
/// </summary>
public sealed class Transaction : IAsyncDisposable
{
    private static readonly ByteString FromKeyEnd = ByteString.CopyFrom(0);

    private readonly TransactionClient _owner;
    private readonly TransactionOptions _options;
    private readonly List<(ByteString Key, ByteString? Value)> _writes = [];
    private readonly Dictionary<(ByteString Key, ByteString RangeEnd), bool> _locks = [];
    private readonly List<KeyRange> _reads = [];
    private readonly Dictionary<ByteString, long> _seen = [];

    // Values of locked keys that came back with their grant (null: the key did not exist); valid
    // until the transaction ends because the lock keeps every other transaction from writing them.
    private readonly Dictionary<ByteString, KeyValue?> _lockedValues = [];
    private readonly ByteString _idempotencyKey = ByteString.CopyFrom(Guid.NewGuid().ToByteArray());
    private bool _finished;

    internal Transaction(TransactionClient owner, TransactionOptions options, long id, long age, IReadOnlyList<long>? beginTokens = null)
    {
        _owner = owner;
        _options = options;
        Id = id;
        Age = age;
        BeginFencingTokens = beginTokens ?? [];
        if (options.Locks is { } locks)
        {
            foreach (var target in locks)
            {
                Remember(target);
            }
        }
    }

    /// <summary>
    /// The fencing tokens of the locks taken with Begin (<see cref="TransactionOptions.Locks"/>), in
    /// the same order; empty when Begin took none.
    /// </summary>
    public IReadOnlyList<long> BeginFencingTokens { get; }

    /// <summary>The server's transaction id (0 for an optimistic transaction, which has no server state until commit).</summary>
    public long Id { get; }

    /// <summary>The age used by the deadlock victim rule (a retry keeps its first attempt's age).</summary>
    public long Age { get; }

    /// <summary>Pessimistic or optimistic.</summary>
    public TransactionMode Mode => _options.Mode;

    /// <summary>Optimistic: the revision every read sees (0 before the first read).</summary>
    public long ReadRevision { get; private set; }

    /// <summary>The revision the commit applied at (0 before commit).</summary>
    public long CommitRevision { get; private set; }

    /// <summary>Takes a shared lock on a key, or on [key, rangeEnd); returns the grant's fencing token.</summary>
    public Task<long> LockSharedAsync(string key, string? rangeEnd = null, LockOptions? options = null, CancellationToken cancellationToken = default) =>
        LockAsync(Bytes(key), Bytes(rangeEnd), exclusive: false, options, cancellationToken);

    /// <summary>Takes an exclusive lock on a key, or on [key, rangeEnd); returns the grant's fencing token.</summary>
    public Task<long> LockExclusiveAsync(string key, string? rangeEnd = null, LockOptions? options = null, CancellationToken cancellationToken = default) =>
        LockAsync(Bytes(key), Bytes(rangeEnd), exclusive: true, options, cancellationToken);

    /// <summary>
    /// Takes exclusive locks on several keys in one call (one log command as far as they can be
    /// granted at once: a round trip per key less than one call each), in the order given; returns
    /// their fencing tokens in that order. Lock in one consistent order (e.g. sorted) across
    /// transactions so that two of them taking the same keys cannot deadlock. See
    /// <see cref="LockAsync(IEnumerable{LockTarget}, LockOptions?, CancellationToken)"/>.
    /// </summary>
    public Task<IReadOnlyList<long>> LockExclusiveAsync(IEnumerable<string> keys, LockOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        return LockAsync(keys.Select(k => LockTarget.Exclusive(k)), options, cancellationToken);
    }

    /// <summary>Takes shared locks on several keys in one call, in the order given; returns their fencing tokens in that order.</summary>
    public Task<IReadOnlyList<long>> LockSharedAsync(IEnumerable<string> keys, LockOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        return LockAsync(keys.Select(k => LockTarget.Shared(k)), options, cancellationToken);
    }

    /// <summary>
    /// Takes several locks (keys or ranges, S or X: <see cref="LockTarget.Exclusive"/>,
    /// <see cref="LockTarget.Shared"/>) in one call and returns once every one is granted, with a
    /// fencing token per target in the order given. The server validates every target before any
    /// is taken (a bad one changes nothing), then grants them in order up to the first that must
    /// wait, which queues like a single lock (FIFO, deadlock detection, <see cref="LockOptions.Timeout"/>
    /// for each wait); with <see cref="LockOptions.NoWait"/> it is all or none. A target already
    /// held as strongly answers its existing token. On failure (deadlock, timeout, busy) the targets
    /// granted before it stay held until the transaction ends, as with separate calls.
    /// </summary>
    public async Task<IReadOnlyList<long>> LockAsync(IEnumerable<LockTarget> targets, LockOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        var list = targets.ToList();
        if (list.Count == 0)
        {
            throw new ArgumentException("At least one lock target is needed.", nameof(targets));
        }

        ThrowIfFinished();
        ThrowIfNotPessimistic();
        var request = NewLockRequest(list[0].Key, list[0].RangeEnd, list[0].Mode == LockMode.Exclusive, options);
        request.More.AddRange(list.Skip(1));
        var response = await _owner.CallAsync(ct => _owner.Raw.TxnLockAsync(request, ct), "Pessimistic locking", reattach: true, cancellationToken).ConfigureAwait(false);
        foreach (var target in list)
        {
            Remember(target);
        }

        KnowLockedValues(list, response.LockedKeysRead, response.Kvs);

        // A server that predates multi-target locks answers only the first token.
        return response.FencingTokens.Count == list.Count ? [.. response.FencingTokens] : [response.FencingToken];
    }

    /// <summary>Takes a lock (shared or exclusive) on a key or [key, rangeEnd) ("\0" = to the end); returns its fencing token.</summary>
    public async Task<long> LockAsync(ByteString key, ByteString rangeEnd, bool exclusive, LockOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(rangeEnd);
        ThrowIfFinished();
        ThrowIfNotPessimistic();
        var request = NewLockRequest(key, rangeEnd, exclusive, options);

        // A call cut off (e.g. its member died) is repeated: the server re-attaches it to its place in the queue.
        var response = await _owner.CallAsync(ct => _owner.Raw.TxnLockAsync(request, ct), "Pessimistic locking", reattach: true, cancellationToken).ConfigureAwait(false);
        _locks[(key, rangeEnd)] = exclusive || (_locks.TryGetValue((key, rangeEnd), out var held) && held);
        KnowLockedValues([new LockTarget { Key = key, RangeEnd = rangeEnd }], response.LockedKeysRead, response.Kvs);

        return response.FencingToken;
    }

    /// <summary>
    /// Keeps the values a lock call brought back (<see cref="TransactionOptions.ReadLockedKeys"/>):
    /// one per single-key target, null for a key that did not exist. A value already known is kept
    /// (the lock held since then kept it current).
    /// </summary>
    internal void KnowLockedValues(IEnumerable<LockTarget> targets, bool read, IReadOnlyList<KeyValue> kvs)
    {
        if (!read)
        {
            return;
        }

        foreach (var target in targets)
        {
            if (target.RangeEnd.IsEmpty)
            {
                _lockedValues.TryAdd(target.Key, kvs.FirstOrDefault(kv => kv.Key.Equals(target.Key)));
            }
        }
    }

    private Protocol.Transactions.LockRequest NewLockRequest(ByteString key, ByteString rangeEnd, bool exclusive, LockOptions? options) => new()
    {
        TxnId = Id,
        Key = key,
        RangeEnd = rangeEnd,
        Mode = exclusive ? LockMode.Exclusive : LockMode.Shared,
        WaitPolicy = options?.NoWait == true ? WaitPolicy.Nowait : WaitPolicy.Block,
        WaitTimeoutMs = (long)(options?.Timeout ?? _options.LockTimeout ?? TimeSpan.Zero).TotalMilliseconds,
        ReadLockedKeys = _options.ReadLockedKeys,
    };

    private void ThrowIfNotPessimistic()
    {
        if (Mode != TransactionMode.Pessimistic)
        {
            throw new InvalidOperationException("Locks belong to pessimistic transactions; an optimistic one validates at commit instead.");
        }
    }

    /// <summary>Records a lock the transaction holds (so reads and the commit do not ask for it again).</summary>
    private void Remember(LockTarget target) =>
        _locks[(target.Key, target.RangeEnd)] = target.Mode == LockMode.Exclusive || (_locks.TryGetValue((target.Key, target.RangeEnd), out var held) && held);

    /// <summary>Reads a key's value (null if absent), seeing this transaction's own writes.</summary>
    public async Task<string?> GetAsync(string key, CancellationToken cancellationToken = default) =>
        (await GetAsync(Bytes(key), cancellationToken).ConfigureAwait(false))?.Value.ToStringUtf8();

    /// <summary>Reads a key (null if absent), seeing this transaction's own writes.</summary>
    public async Task<KeyValue?> GetAsync(ByteString key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ThrowIfFinished();
        for (var i = _writes.Count - 1; i >= 0; i--)
        {
            if (_writes[i].Key.Equals(key))
            {
                return _writes[i].Value is { } v ? new KeyValue { Key = key, Value = v } : null;
            }
        }

        if (_lockedValues.TryGetValue(key, out var known))
        {
            return known;
        }

        var kvs = await ReadAsync(key, ByteString.Empty, cancellationToken).ConfigureAwait(false);
        return kvs.Count == 0 ? null : kvs[0];
    }

    /// <summary>Reads every key in [key, rangeEnd) ("\0" = to the end), seeing this transaction's own writes.</summary>
    public async Task<IReadOnlyList<KeyValue>> RangeAsync(ByteString key, ByteString rangeEnd, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(rangeEnd);
        ThrowIfFinished();
        var read = await ReadAsync(key, rangeEnd, cancellationToken).ConfigureAwait(false);
        var merged = new SortedDictionary<ByteString, KeyValue?>(ByteStringComparer.Instance);
        foreach (var kv in read)
        {
            merged[kv.Key] = kv;
        }

        foreach (var (k, v) in _writes)
        {
            if (InRange(k, key, rangeEnd))
            {
                merged[k] = v is null ? null : new KeyValue { Key = k, Value = v };
            }
        }

        return [.. merged.Values.Where(v => v is not null).Select(v => v!)];
    }

    /// <summary>Reads every key with <paramref name="prefix"/>.</summary>
    public Task<IReadOnlyList<KeyValue>> RangePrefixAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var start = Bytes(prefix);
        return RangeAsync(start, Arbiter.Protocol.KeyRanges.PrefixEnd(start), cancellationToken);
    }

    /// <summary>Buffers a put (applied at commit).</summary>
    public void Put(string key, string value) => Put(Bytes(key), Bytes(value));

    /// <summary>Buffers a put (applied at commit).</summary>
    public void Put(ByteString key, ByteString value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        ThrowIfFinished();
        Buffer(key, value);
    }

    /// <summary>Buffers a delete of one key (applied at commit).</summary>
    public void Delete(string key) => Delete(Bytes(key));

    /// <summary>Buffers a delete of one key (applied at commit).</summary>
    public void Delete(ByteString key)
    {
        ArgumentNullException.ThrowIfNull(key);
        ThrowIfFinished();
        Buffer(key, null);
    }

    /// <summary>
    /// Commits: pessimistic, takes the missing exclusive locks on written keys, then applies the
    /// writes in one revision and releases every lock; optimistic, commits only if nothing read
    /// changed since <see cref="ReadRevision"/>. A commit whose outcome is unknown (the connection
    /// dropped) is repeated safely: by transaction id, or by idempotency key. Returns the revision.
    /// </summary>
    public async Task<long> CommitAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfFinished();
        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.transaction.commit");
        activity?.SetTag("arbiter.transaction.mode", ModeName);
        activity?.SetTag("arbiter.transaction.id", Id);
        activity?.SetTag("arbiter.transaction.writes", _writes.Count);
        try
        {
            var revision = await CommitOnceAsync(cancellationToken).ConfigureAwait(false);
            activity?.SetTag("arbiter.transaction.outcome", "committed");
            activity?.SetTag("arbiter.transaction.commit_revision", revision);
            RecipeTelemetry.Committed(ModeName);
            return revision;
        }
        catch (Exception e)
        {
            activity?.SetTag("arbiter.transaction.outcome", RecipeTelemetry.TransactionOutcomeOf(e));
            RecipeTelemetry.Fail(activity, e);
            if (_finished)
            {
                // Lock timeouts and busy locks leave the transaction open (the caller may retry the commit).
                RecipeTelemetry.Aborted(ModeName, e);
            }

            throw;
        }
    }

    /// <summary>The mode as the spans and metrics tag it.</summary>
    internal string ModeName => Mode == TransactionMode.Pessimistic ? "pessimistic" : "optimistic";

    private async Task<long> CommitOnceAsync(CancellationToken cancellationToken)
    {
        var ops = _writes.Select(w => w.Value is { } v
            ? new RequestOp { RequestPut = new PutRequest { Key = w.Key, Value = v } }
            : new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = w.Key } }).ToList();
        try
        {
            if (Mode == TransactionMode.Pessimistic)
            {
                foreach (var (key, _) in _writes)
                {
                    if (!_locks.TryGetValue((key, ByteString.Empty), out var exclusive) || !exclusive)
                    {
                        await LockAsync(key, ByteString.Empty, exclusive: true, null, cancellationToken).ConfigureAwait(false);
                    }
                }

                var request = new CommitRequest { TxnId = Id };
                request.Writes.AddRange(ops);
                var response = await _owner.CallAsync(ct => _owner.Raw.TxnCommitAsync(request, ct), "Pessimistic transactions", reattach: true, cancellationToken).ConfigureAwait(false);
                CommitRevision = response.Revision;
            }
            else
            {
                CommitRevision = await CommitOptimisticAsync(ops, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (TransactionException e) when (e is not (LockTimeoutException or LockBusyException))
        {
            _finished = true;
            throw;
        }

        _finished = true;
        return CommitRevision;
    }

    /// <summary>Rolls back (releases every lock; nothing is written). Idempotent.</summary>
    public async Task RollbackAsync(CancellationToken cancellationToken = default)
    {
        if (_finished)
        {
            return;
        }

        _finished = true;
        RecipeTelemetry.Aborted(ModeName, null);
        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.transaction.abort");
        activity?.SetTag("arbiter.transaction.mode", ModeName);
        activity?.SetTag("arbiter.transaction.id", Id);
        if (Mode == TransactionMode.Pessimistic)
        {
            try
            {
                await _owner.CallAsync(ct => _owner.Raw.TxnAbortAsync(new AbortRequest { TxnId = Id }, ct), "Pessimistic transactions", reattach: true, cancellationToken).ConfigureAwait(false);
            }
            catch (TransactionException)
            {
                // Already ended (aborted, expired): nothing is held.
            }
        }
    }

    /// <summary>Rolls back unless committed (best effort: an unreachable server releases the locks when the lease expires).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_finished)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await RollbackAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
        }
    }

    private async Task<IReadOnlyList<KeyValue>> ReadAsync(ByteString key, ByteString rangeEnd, CancellationToken cancellationToken)
    {
        if (Mode == TransactionMode.Pessimistic)
        {
            if (_options.ImplicitLocks && !_locks.ContainsKey((key, rangeEnd)))
            {
                await LockAsync(key, rangeEnd, exclusive: false, null, cancellationToken).ConfigureAwait(false);
                if (rangeEnd.IsEmpty && _lockedValues.TryGetValue(key, out var known))
                {
                    return known is null ? [] : [known];
                }
            }

            var response = await _owner.Kv.RangeAsync(new RangeRequest { Key = key, RangeEnd = rangeEnd }, cancellationToken).ConfigureAwait(false);
            return response.Kvs;
        }

        // The first read fixes the revision (linearizable); later ones read that immutable past state,
        // which any member that applied it can serve without a read barrier (Arbiter's at-revision
        // level; etcd ignores the metadata and serves a linearizable read at the revision, as before).
        var at = ReadRevision == 0 || _owner.IsEtcdBackend
            ? await _owner.Kv.RangeAsync(new RangeRequest { Key = key, RangeEnd = rangeEnd, Revision = ReadRevision }, cancellationToken).ConfigureAwait(false)
            : await _owner.Kv.RangeAsync(new RangeRequest { Key = key, RangeEnd = rangeEnd, Revision = ReadRevision }, Arbiter.Protocol.Consistency.ReadConsistency.AtRevision(ReadRevision), cancellationToken).ConfigureAwait(false);
        if (ReadRevision == 0)
        {
            ReadRevision = at.Header.Revision;
        }

        _reads.Add(new KeyRange { Key = key, RangeEnd = rangeEnd });
        foreach (var kv in at.Kvs)
        {
            _seen[kv.Key] = kv.ModRevision;
        }

        if (rangeEnd.IsEmpty && at.Kvs.Count == 0)
        {
            _seen[key] = 0;
        }

        return at.Kvs;
    }

    private async Task<long> CommitOptimisticAsync(List<RequestOp> ops, CancellationToken cancellationToken)
    {
        if (!_owner.IsEtcdBackend)
        {
            var request = new OptimisticCommitRequest { ReadRevision = ReadRevision, IdempotencyKey = _idempotencyKey };
            if (ReadRevision == 0)
            {
                // Nothing read: a blind write commits at whatever the revision is now.
                request.ReadRevision = await _owner.Client.GetRevisionAsync(cancellationToken).ConfigureAwait(false);
            }

            request.Reads.AddRange(_reads);
            request.Writes.AddRange(ops);
            try
            {
                var response = await _owner.CallAsync(ct => _owner.Raw.TxnOptimisticCommitAsync(request, ct), "Optimistic commit", reattach: true, cancellationToken).ConfigureAwait(false);
                return response.Revision;
            }
            catch (NotSupportedException)
            {
                _owner.IsEtcdBackend = true;
            }
        }

        return await CommitWithEtcdComparesAsync(ops, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The etcd fallback: one Txn whose compares are each key seen (mod revision unchanged, 0 if it
    /// was absent: catches updates and deletions) and each range read (mod revision at most the read
    /// revision: catches inserts). It cannot name the conflicting key, and a commit retried after an
    /// unknown outcome may apply twice (etcd has no idempotency key).
    /// </summary>
    private async Task<long> CommitWithEtcdComparesAsync(List<RequestOp> ops, CancellationToken cancellationToken)
    {
        var txn = new TxnRequest();
        foreach (var (key, rev) in _seen)
        {
            txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = rev });
        }

        foreach (var read in _reads.Where(r => !r.RangeEnd.IsEmpty))
        {
            txn.Compare.Add(new Compare { Key = read.Key, RangeEnd = read.RangeEnd, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Less, ModRevision = ReadRevision + 1 });
        }

        txn.Success.AddRange(ops);
        var response = await _owner.Kv.TxnAsync(txn, cancellationToken).ConfigureAwait(false);
        if (!response.Succeeded)
        {
            throw new ConflictException($"optimistic commit failed: something read at revision {ReadRevision} changed (etcd does not say which key)", null);
        }

        return response.Header.Revision;
    }

    private void Buffer(ByteString key, ByteString? value)
    {
        _writes.RemoveAll(w => w.Key.Equals(key));
        _writes.Add((key, value));
    }

    private void ThrowIfFinished()
    {
        if (_finished)
        {
            throw new InvalidOperationException($"Transaction {Id} has already committed or rolled back.");
        }
    }

    private static bool InRange(ByteString k, ByteString key, ByteString rangeEnd)
    {
        if (rangeEnd.IsEmpty)
        {
            return k.Equals(key);
        }

        return ByteStringComparer.Instance.Compare(k, key) >= 0
            && (rangeEnd.Equals(FromKeyEnd) || ByteStringComparer.Instance.Compare(k, rangeEnd) < 0);
    }

    internal static ByteString Bytes(string? s) => s is null ? ByteString.Empty : ByteString.CopyFromUtf8(s);

    private sealed class ByteStringComparer : IComparer<ByteString>
    {
        public static readonly ByteStringComparer Instance = new();

        public int Compare(ByteString? x, ByteString? y) => (x ?? ByteString.Empty).Span.SequenceCompareTo((y ?? ByteString.Empty).Span);
    }
}
