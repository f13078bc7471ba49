using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Recipes.Transactions;

/// <summary>etcd clientv3 STM isolation levels (concurrency.Isolation), with exactly etcd's semantics.</summary>
public enum StmIsolation
{
    /// <summary>
    /// (etcd's default) The first read is linearizable; its revision R pins every later read
    /// (at revision R, serializable). Commit requires every key read unchanged (mod revision as
    /// seen) and every key written unmodified since R (mod revision &lt; R+1).
    /// </summary>
    SerializableSnapshot,

    /// <summary>Pinned reads as <see cref="SerializableSnapshot"/>; commit checks only the keys read.</summary>
    Serializable,

    /// <summary>Serializable (local, possibly stale) reads, each key cached on first read; commit checks the keys read.</summary>
    RepeatableReads,

    /// <summary>Serializable reads; no commit check at all (an atomic batch of writes).</summary>
    ReadCommitted,
}

/// <summary>
/// The STM handed to <c>AtomicallyAsync</c>: a port of etcd's <c>client/v3/concurrency/stm.go</c>.
/// Reads go through a read set (a Txn of Gets), writes into a write set; the commit is one Txn
/// whose compares depend on the isolation level, and for the serializable levels whose Else
/// branch prefetches the keys read, so the next attempt starts without a round trip.
/// Beyond etcd: <see cref="RangeAsync"/> reads a key range, and commit then also checks that no
/// key in the range was created or changed after the read (a range compare), and that every key
/// seen is unchanged: phantom-safe. Range compares are etcd's too (v3.3+), so it runs there as well.
/// </summary>
public sealed class Stm
{
    private readonly ArbiterClient _client;
    private readonly StmIsolation _isolation;
    private readonly Dictionary<string, RangeResponse> _readSet = new(StringComparer.Ordinal);
    private readonly List<string> _readOrder = [];
    private readonly Dictionary<string, (string Value, bool Deleted)> _writeSet = new(StringComparer.Ordinal);
    private readonly List<string> _writeOrder = [];
    private readonly List<(ByteString Key, ByteString RangeEnd, RangeResponse Response)> _ranges = [];
    private Dictionary<string, RangeResponse> _prefetch = new(StringComparer.Ordinal);
    private long _pinnedRevision;   // 0: reads are not pinned (etcd: getOpts)

    internal Stm(ArbiterClient client, StmIsolation isolation)
    {
        _client = client;
        _isolation = isolation;
    }

    private bool IsSerializable => _isolation is StmIsolation.SerializableSnapshot or StmIsolation.Serializable;

    /// <summary>The value of the first key given ("" if absent), its own writes first (etcd's Get).</summary>
    public async Task<string> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (_writeSet.TryGetValue(key, out var written))
        {
            return written.Value;
        }

        var response = await FetchAsync(key, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? "" : response.Kvs[0].Value.ToStringUtf8();
    }

    /// <summary>The key's mod revision as read (0 if absent), etcd's Rev.</summary>
    public async Task<long> RevAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var response = await FetchAsync(key, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? 0 : response.Kvs[0].ModRevision;
    }

    /// <summary>Buffers a put.</summary>
    public void Put(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        Write(key, (value, false));
    }

    /// <summary>Buffers a delete (etcd's Del); a later Get of the key returns "".</summary>
    public void Delete(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        Write(key, ("", true));
    }

    /// <summary>
    /// Reads every key in [key, rangeEnd) at the STM's read revision (an Arbiter extension of etcd's
    /// STM; buffered writes are not merged in). Under every level but ReadCommitted the commit then
    /// fails if a key in the range was created, changed or deleted after the read.
    /// </summary>
    public async Task<IReadOnlyList<KeyValue>> RangeAsync(string key, string rangeEnd, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(rangeEnd);
        var request = new RangeRequest { Key = ByteString.CopyFromUtf8(key), RangeEnd = ByteString.CopyFromUtf8(rangeEnd) };
        ApplyReadOptions(request);
        var txn = new TxnRequest();
        txn.Success.Add(new RequestOp { RequestRange = request });
        var firstRead = _readSet.Count == 0 && _ranges.Count == 0;
        var response = (await _client.TxnAsync(txn, cancellationToken).ConfigureAwait(false)).Responses[0].ResponseRange;
        _ranges.Add((request.Key, request.RangeEnd, response));
        if (firstRead && IsSerializable)
        {
            _pinnedRevision = response.Header.Revision;
        }

        return response.Kvs;
    }

    /// <summary>
    /// Drops the prefetched reads. etcd retries at once, while the prefetch is fresh; this port
    /// backs off first, and on a hot key the state read at the failed commit is stale by the time
    /// the retry runs: an attempt computed from it is bound to fail again, and a client that keeps
    /// backing off starves while those that just committed (no backoff) win every race.
    /// </summary>
    internal void ForgetPrefetch() => _prefetch = new Dictionary<string, RangeResponse>(StringComparer.Ordinal);

    /// <summary>Starts an attempt: empty read and write sets (prefetched reads are kept).</summary>
    internal void Reset()
    {
        _readSet.Clear();
        _readOrder.Clear();
        _writeSet.Clear();
        _writeOrder.Clear();
        _ranges.Clear();
    }

    /// <summary>The commit Txn; its response when it succeeded, null on conflict (after loading the prefetch).</summary>
    internal async Task<TxnResponse?> CommitAsync(CancellationToken cancellationToken)
    {
        var txn = new TxnRequest();
        txn.Compare.AddRange(Conflicts());
        foreach (var key in _writeOrder)
        {
            var (value, deleted) = _writeSet[key];
            txn.Success.Add(deleted
                ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = ByteString.CopyFromUtf8(key) } }
                : new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) } });
        }

        var keys = IsSerializable ? _readOrder.ToList() : [];
        foreach (var key in keys)
        {
            txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = ByteString.CopyFromUtf8(key) } });
        }

        var response = await _client.TxnAsync(txn, cancellationToken).ConfigureAwait(false);
        if (response.Succeeded)
        {
            return response;
        }

        if (IsSerializable)
        {
            // etcd: load the prefetch with the Else reads, and unpin (the next first read re-pins).
            for (var i = 0; i < keys.Count; i++)
            {
                _readSet[keys[i]] = response.Responses[i].ResponseRange;
            }

            _prefetch = new Dictionary<string, RangeResponse>(_readSet, StringComparer.Ordinal);
            _pinnedRevision = 0;
        }

        return null;
    }

    private async Task<RangeResponse> FetchAsync(string key, CancellationToken cancellationToken)
    {
        var firstRead = _readSet.Count == 0 && _ranges.Count == 0;
        if (IsSerializable && _prefetch.Remove(key, out var prefetched))
        {
            AddRead(key, prefetched);
        }

        if (!_readSet.TryGetValue(key, out var response))
        {
            var request = new RangeRequest { Key = ByteString.CopyFromUtf8(key) };
            ApplyReadOptions(request);
            var txn = new TxnRequest();
            txn.Success.Add(new RequestOp { RequestRange = request });
            response = (await _client.TxnAsync(txn, cancellationToken).ConfigureAwait(false)).Responses[0].ResponseRange;
            AddRead(key, response);
        }

        if (firstRead && IsSerializable)
        {
            // The transaction's base revision is defined by its first read.
            _pinnedRevision = response.Header.Revision;
        }

        return response;
    }

    private void ApplyReadOptions(RangeRequest request)
    {
        if (IsSerializable)
        {
            if (_pinnedRevision != 0)
            {
                request.Revision = _pinnedRevision;
                request.Serializable = true;
            }
        }
        else
        {
            request.Serializable = true;
        }
    }

    private void AddRead(string key, RangeResponse response)
    {
        if (!_readSet.ContainsKey(key))
        {
            _readOrder.Add(key);
        }

        _readSet[key] = response;
    }

    private void Write(string key, (string, bool) value)
    {
        if (!_writeSet.ContainsKey(key))
        {
            _writeOrder.Add(key);
        }

        _writeSet[key] = value;
    }

    private List<Compare> Conflicts()
    {
        var compares = new List<Compare>();
        if (_isolation == StmIsolation.ReadCommitted)
        {
            return compares;
        }

        foreach (var key in _readOrder)
        {
            compares.Add(IsKeyCurrent(ByteString.CopyFromUtf8(key), _readSet[key]));
        }

        foreach (var (key, rangeEnd, response) in _ranges)
        {
            // Phantoms: nothing in the range created or changed after the read; deletions of keys seen.
            compares.Add(new Compare { Key = key, RangeEnd = rangeEnd, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Less, ModRevision = response.Header.Revision + 1 });
            foreach (var kv in response.Kvs)
            {
                compares.Add(IsKeyCurrent(kv.Key, new RangeResponse { Kvs = { kv } }));
            }
        }

        if (_isolation == StmIsolation.SerializableSnapshot)
        {
            // etcd: wset.cmps(rset.first() + 1), first() being the lowest header revision read.
            var first = long.MaxValue - 1;
            foreach (var r in _readSet.Values.Concat(_ranges.Select(x => x.Response)))
            {
                first = Math.Min(first, r.Header.Revision);
            }

            foreach (var key in _writeOrder)
            {
                compares.Add(new Compare { Key = ByteString.CopyFromUtf8(key), Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Less, ModRevision = first + 1 });
            }
        }

        return compares;
    }

    private static Compare IsKeyCurrent(ByteString key, RangeResponse response) => new()
    {
        Key = key,
        Target = Compare.Types.CompareTarget.Mod,
        Result = Compare.Types.CompareResult.Equal,
        ModRevision = response.Kvs.Count == 0 ? 0 : response.Kvs[0].ModRevision,
    };
}
