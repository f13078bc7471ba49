using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Arbiter.Core;
using Arbiter.Crdt;
using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Internal;
using Arbiter.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Crdt;

/// <summary>
/// One member's replica of the eventual tier: every CRDT key's state, changed locally (available
/// under partition) and by other members' deltas, durable on the member's own log (not the Raft
/// log: DESIGN.md's one exception). An update is answered once its delta is fsync'd (group commit).
/// </summary>
/// <remarks>
/// Two views: the working states, which updates mutate (so that concurrent updates get distinct
/// dots), and the durable states, which hold only what is on disk. Reads, watches, digests and
/// gossip use the durable view only, so nothing a crash could lose ever leaves the process: after a
/// restart the replica never reuses a dot another member has seen.
/// </remarks>
internal sealed class CrdtReplica : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, CrdtState> _working = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CrdtState> _durable = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ulong> _digests = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Channel<CrdtState>>> _watchers = new(StringComparer.Ordinal);

    /// <summary>Retired replicas (docs/crdt.md, "Memory and tombstone behaviour"), working view: dropped from every state joined.</summary>
    private readonly SortedSet<ulong> _retired = [];

    /// <summary>Retired replicas as far as the disk knows (the write loop's view, in log order).</summary>
    private readonly SortedSet<ulong> _durableRetired = [];
    private readonly DeltaBuffer _buffer;
    private readonly HybridLogicalClock _clock;
    private readonly IWallClock _wallClock;
    private readonly CrdtOptions _options;
    private readonly WriteAheadLog? _log;
    private readonly Channel<PendingRecord> _pending = Channel.CreateUnbounded<PendingRecord>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writer;
    private readonly ILogger _logger;
    private long _recordsSinceSnapshot;
    private Task _snapshotting = Task.CompletedTask;
    private Exception? _failure;

    private CrdtReplica(ReplicaId id, WriteAheadLog? log, CrdtOptions options, IWallClock wallClock, ILogger logger)
    {
        Id = id;
        _log = log;
        _options = options;
        _wallClock = wallClock;
        _logger = logger;
        _clock = new HybridLogicalClock(options.ClockOffsetMsMax);
        _buffer = new DeltaBuffer(options.DeltaBufferEntriesMax);
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>This replica's id: random per data directory, so a wiped member never reuses the dots of its former self.</summary>
    public ReplicaId Id { get; }

    /// <summary>The options this replica runs with.</summary>
    public CrdtOptions Options => _options;

    /// <summary>Raised (outside any lock) when new deltas are durable and may be gossiped.</summary>
    public event Action? DeltasAvailable;

    /// <summary>Keys held (durable view).</summary>
    public int KeyCount
    {
        get
        {
            lock (_gate)
            {
                return _durable.Count;
            }
        }
    }

    /// <summary>
    /// Opens the replica in <paramref name="directory"/> (created if needed): its id, the newest
    /// snapshot and the log after it. Null keeps everything in memory.
    /// </summary>
    public static CrdtReplica Open(string? directory, CrdtOptions options, IWallClock wallClock, bool fsyncEnabled, ILogger logger)
    {
        if (directory is null)
        {
            return new CrdtReplica(new ReplicaId(NewReplicaId()), null, options, wallClock, logger);
        }

        Directory.CreateDirectory(directory);
        var id = LoadOrCreateReplicaId(directory);
        var log = WriteAheadLog.Open(new WalOptions { DirectoryPath = Path.Combine(directory, "log"), FsyncEnabled = fsyncEnabled });
        try
        {
            var (states, retired) = Recover(log);
            var replica = new CrdtReplica(id, log, options, wallClock, logger);
            foreach (var (key, state) in states)
            {
                replica._working[key] = state;
                replica._durable[key] = state;
            }

            replica._retired.UnionWith(retired);
            replica._durableRetired.UnionWith(retired);

            logger.LogInformation("CRDT replica {Replica:x16} opened: {Keys} key(s), log up to record {Index}", id.Value, states.Count, log.LastIndex);
            return replica;
        }
        catch
        {
            log.Dispose();
            throw;
        }
    }

    private static (Dictionary<string, CrdtState> States, SortedSet<ulong> Retired) Recover(WriteAheadLog log)
    {
        var states = new Dictionary<string, CrdtState>(StringComparer.Ordinal);
        var retired = new SortedSet<ulong>();
        var after = log.FirstIndex - 1;
        if (log.LatestSnapshot is { } snapshot)
        {
            using var stream = log.OpenSnapshot(snapshot);
            var image = CrdtReplicaSnapshot.Parser.ParseFrom(stream);
            foreach (var entry in image.States)
            {
                states[entry.Key] = CrdtState.FromBytes(entry.State.Span);
            }

            retired.UnionWith(image.RetiredReplicas);
            after = snapshot.Index;
        }

        // The same steps, in the same order, as the write loop took: replay is deterministic.
        foreach (var record in log.ReadFrom(after))
        {
            var entry = CrdtKeyState.Parser.ParseFrom(record.Payload.Span);
            if (entry.RetiredReplicas.Count > 0)
            {
                retired.UnionWith(entry.RetiredReplicas);
                RetireAll(states, retired);
                continue;
            }

            var delta = WithoutRetired(CrdtState.FromBytes(entry.State.Span), retired);
            if (!delta.IsEmpty)
            {
                states[entry.Key] = Merge(states.GetValueOrDefault(entry.Key), delta, out _);
            }
        }

        return (states, retired);
    }

    private static CrdtState WithoutRetired(CrdtState state, SortedSet<ulong> retired) =>
        retired.Count == 0 ? state : state.Retire([.. retired.Select(replica => new ReplicaId(replica))]);

    private static void RetireAll(Dictionary<string, CrdtState> states, SortedSet<ulong> retired)
    {
        foreach (var (key, state) in states.ToList())
        {
            states[key] = WithoutRetired(state, retired);
        }
    }

    private static ReplicaId LoadOrCreateReplicaId(string directory)
    {
        var file = Path.Combine(directory, "replica-id");
        if (File.Exists(file))
        {
            return new ReplicaId(ulong.Parse(File.ReadAllText(file).Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture));
        }

        var id = NewReplicaId();
        // Written before the first delta: if the rename is lost in a crash, the member simply comes
        // back as yet another new replica (no dot of the lost id can be reused).
        var temporary = file + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write))
        {
            stream.Write(Encoding.ASCII.GetBytes(id.ToString("x16", System.Globalization.CultureInfo.InvariantCulture)));
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, file);
        return new ReplicaId(id);
    }

    private static ulong NewReplicaId()
    {
        // Not derived from the member id: a wiped member comes back as a new replica, so that dots
        // it issues again never collide with the ones its former self issued.
        ulong id;
        do
        {
            id = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        }
        while (id == 0);
        return id;
    }

    /// <summary>The next timestamp of this replica's hybrid logical clock, for a reply's causal token.</summary>
    public Hlc Now()
    {
        lock (_gate)
        {
            return _clock.Now(_wallClock.NowUnixMs);
        }
    }

    /// <summary>
    /// Applies one operation as this replica and returns once its delta is on disk. Bad input
    /// (wrong type for the key, limits, a causal token beyond the clock offset) changes nothing.
    /// </summary>
    public async Task<(CrdtState State, CrdtState Delta, Hlc Stamp)> UpdateAsync(string key, CrdtType type, CrdtOperation operation, Hlc? causalToken, CancellationToken cancellationToken)
    {
        ValidateKey(key);
        if (type == CrdtType.Unspecified || !Enum.IsDefined(type))
        {
            throw Invalid($"unknown CRDT type {(int)type}");
        }

        PendingRecord pending;
        CrdtState next;
        CrdtState delta;
        Hlc stamp;
        lock (_gate)
        {
            ThrowIfFailed();
            var now = _wallClock.NowUnixMs;
            if (causalToken is { } token)
            {
                try
                {
                    _clock.Observe(token, now);
                }
                catch (ClockOffsetException e)
                {
                    throw Invalid($"causal token refused: {e.Message}");
                }
            }

            stamp = _clock.Now(now);
            var exists = _working.TryGetValue(key, out var current);
            if (exists && current!.Type != type)
            {
                throw Invalid($"key \"{key}\" holds a {current.Type}, not a {type}");
            }

            if (!exists && _working.Count >= _options.KeysMax)
            {
                throw new EtcdException(new EtcdError(ErrorStatusCode.ResourceExhausted, $"arbiter: crdt: too many keys (the limit is {_options.KeysMax})"));
            }

            try
            {
                delta = CrdtMutator.Apply(current ?? CrdtState.Empty(type), operation, Id, stamp, _options.Limits, out next);
            }
            catch (CrdtException e)
            {
                throw Invalid(e.Message);
            }

            _working[key] = next;
            pending = PendingRecord.Write(key, delta);
            _pending.Writer.TryWrite(pending);
        }

        await pending.Durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return (next, delta, stamp);
    }

    /// <summary>
    /// Joins deltas or states from another replica and returns once they are on disk (those that
    /// changed nothing too: they may still be waiting for the disk from an earlier call). The
    /// sender's clock is observed first; a clock beyond the allowed offset refuses the whole batch.
    /// <paramref name="originReplica"/> is the replica they came from (0 if several or unknown): the
    /// gossip buffer remembers it, so that they are not relayed back to it.
    /// </summary>
    public async Task JoinRemoteAsync(IReadOnlyList<CrdtKeyState> states, Hlc senderClock, ulong originReplica, CancellationToken cancellationToken)
    {
        // Decode everything before changing anything: a malformed batch is refused whole.
        var decoded = new List<(string Key, CrdtState State)>(states.Count);
        foreach (var entry in states)
        {
            ValidateKey(entry.Key);
            try
            {
                decoded.Add((entry.Key, CrdtState.FromBytes(entry.State.Span)));
            }
            catch (CrdtException e)
            {
                throw Invalid($"malformed state for key \"{entry.Key}\": {e.Message}");
            }
        }

        var barrier = PendingRecord.Barrier();
        lock (_gate)
        {
            ThrowIfFailed();
            try
            {
                _clock.Observe(senderClock, _wallClock.NowUnixMs);
            }
            catch (ClockOffsetException e)
            {
                _logger.LogError("ALARM: CRDT deltas refused, the sending member's clock is too far ahead: {Reason}", e.Message);
                throw new EtcdException(new EtcdError(ErrorStatusCode.FailedPrecondition, $"arbiter: crdt: clock offset beyond the maximum: {e.Message}"));
            }

            foreach (var (key, received) in decoded)
            {
                // A retired replica's dots are dropped on arrival: its contribution lives on in the
                // pruner's dots, and no member keeps a marker for it any more.
                var state = WithoutRetired(received, _retired);
                var current = _working.GetValueOrDefault(key);

                // What this key's markers would drop anyway is not kept for relaying either, so a
                // member that retired the replica (or never saw it) is never sent its late dots.
                if (current is not null && current.Type == state.Type && current.PrunedReplicas.Count > 0)
                {
                    state = state.Retire(current.PrunedReplicas);
                }

                if (state.IsEmpty)
                {
                    continue;
                }

                if (current is null && _working.Count >= _options.KeysMax)
                {
                    _logger.LogError("CRDT key {Key} from another member dropped: this replica holds the most keys allowed ({Max})", key, _options.KeysMax);
                    continue;
                }

                var next = Merge(current, state, out var changed);
                if (changed)
                {
                    _working[key] = next;
                    _pending.Writer.TryWrite(PendingRecord.Write(key, state, originReplica));
                }
            }

            _pending.Writer.TryWrite(barrier);
        }

        await barrier.Durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Joins <paramref name="incoming"/> into <paramref name="current"/>. A key's type is fixed by
    /// its first update; when members cut off from each other created the same key with different
    /// types, the lower type number wins everywhere (deterministic, so replicas still converge) and
    /// the other type's state for that key is dropped.
    /// </summary>
    public static CrdtState Merge(CrdtState? current, CrdtState incoming, out bool changed)
    {
        if (current is null || incoming.Type < current.Type)
        {
            changed = true;
            return incoming;
        }

        if (incoming.Type > current.Type)
        {
            changed = false;
            return current;
        }

        var next = current.Join(incoming);
        changed = !next.Equals(current);
        return next;
    }

    /// <summary>
    /// Prunes <paramref name="departed"/> from every key this replica holds, folding its
    /// contributions into this replica's (<see cref="CrdtPruning"/>); the pruning deltas are
    /// written and gossiped like updates. Returns once they are on disk, with the number of keys
    /// pruned. Only the member the Raft log names as the departed replica's pruner calls this,
    /// after exchanging digests with every other member.
    /// </summary>
    public async Task<int> PruneAsync(ReplicaId departed, CancellationToken cancellationToken)
    {
        var barrier = PendingRecord.Barrier();
        var pruned = 0;
        lock (_gate)
        {
            ThrowIfFailed();
            foreach (var (key, current) in _working.ToList())
            {
                if (!current.Replicas.Contains(departed))
                {
                    continue;
                }

                CrdtState delta;
                CrdtState next;
                try
                {
                    delta = CrdtPruning.Prune(current, departed, Id, out next);
                }
                catch (CrdtException e)
                {
                    _logger.LogError("CRDT key {Key} not pruned of replica {Replica:x16}: {Reason}", key, departed.Value, e.Message);
                    continue;
                }

                if (delta.IsEmpty)
                {
                    continue;
                }

                _working[key] = next;
                _pending.Writer.TryWrite(PendingRecord.Write(key, delta));
                pruned++;
            }

            _pending.Writer.TryWrite(barrier);
        }

        await barrier.Durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return pruned;
    }

    /// <summary>Whether any state this replica holds on disk names a dot of <paramref name="replica"/> (store or context; pruned markers do not count).</summary>
    public bool HoldsDotsOf(ReplicaId replica)
    {
        lock (_gate)
        {
            return _durable.Values.Any(state => state.Replicas.Contains(replica));
        }
    }

    /// <summary>Whether this replica has retired <paramref name="replica"/> (its markers dropped, its dots dropped on arrival).</summary>
    public bool IsRetired(ulong replica)
    {
        lock (_gate)
        {
            return _retired.Contains(replica);
        }
    }

    /// <summary>Pruned markers held on disk, summed over the keys (each about 9 bytes).</summary>
    public int PrunedMarkerCount
    {
        get
        {
            lock (_gate)
            {
                return _durable.Values.Sum(state => state.PrunedReplicas.Count);
            }
        }
    }

    /// <summary><paramref name="state"/> (from another member) without any dot of a retired replica, as it would be joined here.</summary>
    public CrdtState WithoutRetired(CrdtState state)
    {
        lock (_gate)
        {
            return WithoutRetired(state, _retired);
        }
    }

    /// <summary>
    /// Retires <paramref name="replicas"/> (departed, pruned, and held pruned by every member: a
    /// fact of the Raft log): drops their markers and dots from every state, the gossip buffer
    /// included, and their dots from every state joined from now on. Written to the replica's log
    /// like a delta, so a restart replays it in the same place. Returns once it is on disk, with the
    /// number of keys that changed.
    /// </summary>
    public async Task<int> RetireAsync(IReadOnlyCollection<ulong> replicas, CancellationToken cancellationToken)
    {
        PendingRecord record;
        var changed = 0;
        lock (_gate)
        {
            ThrowIfFailed();
            _retired.UnionWith(replicas);
            foreach (var (key, state) in _working.ToList())
            {
                var retired = WithoutRetired(state, _retired);
                if (!ReferenceEquals(retired, state))
                {
                    _working[key] = retired;
                    changed++;
                }
            }

            record = PendingRecord.Retire([.. replicas.Order()]);
            _pending.Writer.TryWrite(record);
        }

        await record.Durable.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return changed;
    }

    /// <summary>A key's durable state, or null.</summary>
    public CrdtState? Get(string key)
    {
        ValidateKey(key);
        lock (_gate)
        {
            return _durable.GetValueOrDefault(key);
        }
    }

    /// <summary>Every key's digest (first 8 bytes of SHA-256 of the state's encoding), durable view.</summary>
    public List<CrdtKeyDigest> Digest()
    {
        lock (_gate)
        {
            var digests = new List<CrdtKeyDigest>(_durable.Count);
            foreach (var (key, state) in _durable)
            {
                if (!_digests.TryGetValue(key, out var hash))
                {
                    hash = DigestOf(state);
                    _digests[key] = hash;
                }

                digests.Add(new CrdtKeyDigest { Key = key, Hash = hash });
            }

            return digests;
        }
    }

    private static ulong DigestOf(CrdtState state) => BitConverter.ToUInt64(SHA256.HashData(state.ToBytes()), 0);

    /// <summary>
    /// The repair answer to another replica's digest: this replica's state of every key whose
    /// digest differs or that the other lacks, and the keys this replica lacks.
    /// </summary>
    public (List<CrdtKeyState> Differing, List<string> Wanted) Compare(IEnumerable<CrdtKeyDigest> theirs)
    {
        var theirByKey = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var digest in theirs)
        {
            theirByKey[digest.Key] = digest.Hash;
        }

        var ours = Digest().ToDictionary(d => d.Key, d => d.Hash, StringComparer.Ordinal);
        var differing = new List<CrdtKeyState>();
        var wanted = new List<string>();
        lock (_gate)
        {
            foreach (var (key, hash) in ours)
            {
                if (!theirByKey.TryGetValue(key, out var theirHash) || theirHash != hash)
                {
                    differing.Add(new CrdtKeyState { Key = key, State = ByteString.CopyFrom(_durable[key].ToBytes()) });
                }
            }
        }

        foreach (var key in theirByKey.Keys)
        {
            if (!ours.ContainsKey(key))
            {
                wanted.Add(key);
            }
        }

        differing.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        wanted.Sort(StringComparer.Ordinal);
        return (differing, wanted);
    }

    /// <summary>The durable states of <paramref name="keys"/> this replica holds.</summary>
    public List<CrdtKeyState> StatesOf(IEnumerable<string> keys)
    {
        var states = new List<CrdtKeyState>();
        lock (_gate)
        {
            foreach (var key in keys)
            {
                if (_durable.TryGetValue(key, out var state))
                {
                    states.Add(new CrdtKeyState { Key = key, State = ByteString.CopyFrom(state.ToBytes()) });
                }
            }
        }

        return states;
    }

    /// <summary>
    /// Durable deltas after <paramref name="afterSequence"/> for gossip to <paramref name="recipientReplica"/>,
    /// without those that came from it (it holds them: it sent them durable); null if the buffer no
    /// longer has them all (repair instead). The sequence returned covers the skipped ones too.
    /// </summary>
    public (List<CrdtKeyState> Deltas, long LastSequence)? DeltasAfter(long afterSequence, int countMax, ulong recipientReplica)
    {
        lock (_gate)
        {
            return _buffer.After(afterSequence, countMax, recipientReplica);
        }
    }

    /// <summary>Sequence number of the newest durable delta in the gossip buffer.</summary>
    public long LastSequence
    {
        get
        {
            lock (_gate)
            {
                return _buffer.LastSequence;
            }
        }
    }

    /// <summary>
    /// The key's merged value each time it changes (durable view), starting with the current one;
    /// a slow reader skips to the newest value. Ends when <paramref name="cancellationToken"/> fires.
    /// </summary>
    public async IAsyncEnumerable<CrdtState?> WatchAsync(string key, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ValidateKey(key);
        var channel = Channel.CreateBounded<CrdtState>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        CrdtState? first;
        lock (_gate)
        {
            first = _durable.GetValueOrDefault(key);
            if (!_watchers.TryGetValue(key, out var list))
            {
                list = [];
                _watchers[key] = list;
            }

            list.Add(channel);
        }

        try
        {
            yield return first;
            while (await channel.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (channel.Reader.TryRead(out var state))
                {
                    yield return state;
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                if (_watchers.TryGetValue(key, out var list))
                {
                    list.Remove(channel);
                    if (list.Count == 0)
                    {
                        _watchers.Remove(key);
                    }
                }
            }
        }
    }

    private async Task WriteLoopAsync()
    {
        var reader = _pending.Reader;
        var batch = new List<PendingRecord>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < _options.BatchRecordsMax && reader.TryRead(out var record))
            {
                batch.Add(record);
            }

            try
            {
                var lastIndex = 0L;
                if (_log is not null)
                {
                    foreach (var record in batch)
                    {
                        if (record.Key is not null)
                        {
                            lastIndex = _log.Append(new CrdtKeyState { Key = record.Key, State = record.Encoded }.ToByteArray());
                        }
                        else if (record.Retired is { } retired)
                        {
                            var entry = new CrdtKeyState();
                            entry.RetiredReplicas.AddRange(retired);
                            lastIndex = _log.Append(entry.ToByteArray());
                        }
                    }

                    _log.Flush();
                }

                var gossip = false;
                lock (_gate)
                {
                    foreach (var record in batch)
                    {
                        if (record.Retired is { } retired)
                        {
                            _durableRetired.UnionWith(retired);
                            RetireAll(_durable, _durableRetired);
                            _digests.Clear();
                            _buffer.Retire(_durableRetired);
                            continue;
                        }

                        if (record.Key is null)
                        {
                            continue;
                        }

                        // A delta queued before a retirement that has reached the disk since.
                        var delta = WithoutRetired(record.Delta!, _durableRetired);
                        if (delta.IsEmpty)
                        {
                            continue;
                        }

                        var next = Merge(_durable.GetValueOrDefault(record.Key), delta, out var changed);
                        if (!changed)
                        {
                            continue;
                        }

                        _durable[record.Key] = next;
                        _digests.Remove(record.Key);
                        _buffer.Add(record.Key, ReferenceEquals(delta, record.Delta) ? record.Encoded : ByteString.CopyFrom(delta.ToBytes()), record.Origin);
                        gossip = true;
                        if (_watchers.TryGetValue(record.Key, out var watchers))
                        {
                            foreach (var watcher in watchers)
                            {
                                watcher.Writer.TryWrite(next);
                            }
                        }
                    }

                    _recordsSinceSnapshot += batch.Count(r => r.Key is not null || r.Retired is not null);
                    if (_log is not null && _recordsSinceSnapshot >= _options.SnapshotEveryRecords && _snapshotting.IsCompleted)
                    {
                        _recordsSinceSnapshot = 0;
                        var copy = _durable.ToList();
                        var retiredCopy = _durableRetired.ToList();
                        var index = lastIndex > 0 ? lastIndex : _log.LastIndex;
                        _snapshotting = Task.Run(() => WriteSnapshot(index, copy, retiredCopy));
                    }
                }

                foreach (var record in batch)
                {
                    record.Durable.TrySetResult();
                }

                if (gossip)
                {
                    DeltasAvailable?.Invoke();
                }
            }
            catch (Exception e)
            {
                // What reached the disk is unknown after a failed write or fsync: stop accepting.
                _logger.LogCritical(e, "CRDT replica log failed; the eventual tier stops accepting updates on this member");
                lock (_gate)
                {
                    _failure = e;
                }

                foreach (var record in batch)
                {
                    record.Durable.TrySetException(new EtcdException(new EtcdError(ErrorStatusCode.Internal, "arbiter: crdt: the replica's log failed; see the member's log")));
                }
            }
        }
    }

    private void WriteSnapshot(long index, List<KeyValuePair<string, CrdtState>> states, List<ulong> retired)
    {
        try
        {
            var snapshot = new CrdtReplicaSnapshot();
            snapshot.RetiredReplicas.AddRange(retired);
            foreach (var (key, state) in states.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                snapshot.States.Add(new CrdtKeyState { Key = key, State = ByteString.CopyFrom(state.ToBytes()) });
            }

            _log!.WriteSnapshot(index, stream => snapshot.WriteTo(stream));
        }
        catch (Exception e)
        {
            _logger.LogError(e, "CRDT replica snapshot at record {Index} failed; the log keeps everything until the next one", index);
        }
    }

    private void ValidateKey(string key)
    {
        if (string.IsNullOrEmpty(key))
        {
            throw Invalid("key is empty");
        }

        if (Encoding.UTF8.GetByteCount(key) > _options.KeySizeBytesMax)
        {
            throw Invalid($"key is longer than {_options.KeySizeBytesMax} bytes");
        }
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
        {
            throw new EtcdException(new EtcdError(ErrorStatusCode.Internal, "arbiter: crdt: the replica's log failed; see the member's log"));
        }
    }

    private static EtcdException Invalid(string message) => new(new EtcdError(ErrorStatusCode.InvalidArgument, "arbiter: crdt: " + message));

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
        await _snapshotting.ConfigureAwait(false);
        lock (_gate)
        {
            foreach (var list in _watchers.Values)
            {
                foreach (var watcher in list)
                {
                    watcher.Writer.TryComplete();
                }
            }
        }

        _log?.Dispose();
    }

    private sealed class PendingRecord
    {
        private PendingRecord(string? key, CrdtState? delta, ulong origin, IReadOnlyList<ulong>? retired = null)
        {
            Key = key;
            Delta = delta;
            Origin = origin;
            Retired = retired;
            Encoded = delta is null ? ByteString.Empty : ByteString.CopyFrom(delta.ToBytes());
        }

        /// <summary>Null for a barrier (completes once everything queued before it is durable) or a retirement.</summary>
        public string? Key { get; }

        /// <summary>For a retirement record: the replicas retired, ascending.</summary>
        public IReadOnlyList<ulong>? Retired { get; }

        public CrdtState? Delta { get; }

        /// <summary>The replica the delta came from; 0 for this replica's own updates (or several senders).</summary>
        public ulong Origin { get; }

        /// <summary>The delta's encoding, made once for the log and the gossip buffer.</summary>
        public ByteString Encoded { get; }

        public TaskCompletionSource Durable { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static PendingRecord Write(string key, CrdtState delta, ulong origin = 0) => new(key, delta, origin);

        public static PendingRecord Barrier() => new(null, null, 0);

        public static PendingRecord Retire(IReadOnlyList<ulong> replicas) => new(null, null, 0, replicas);
    }

    /// <summary>Durable deltas in order, numbered, bounded: the source of gossip.</summary>
    private sealed class DeltaBuffer(int entriesMax)
    {
        private readonly Queue<(long Sequence, string Key, ByteString Delta, ulong Origin)> _entries = new();

        public long LastSequence { get; private set; }

        public void Add(string key, ByteString delta, ulong origin)
        {
            LastSequence++;
            _entries.Enqueue((LastSequence, key, delta, origin));
            while (_entries.Count > entriesMax)
            {
                _entries.Dequeue();
            }
        }

        /// <summary>Rewrites every buffered delta without the retired replicas (so none is gossiped to a member that has not retired them yet).</summary>
        public void Retire(SortedSet<ulong> retired)
        {
            var count = _entries.Count;
            for (var i = 0; i < count; i++)
            {
                var (sequence, key, delta, origin) = _entries.Dequeue();
                var state = CrdtState.FromBytes(delta.Span);
                var without = WithoutRetired(state, retired);
                _entries.Enqueue((sequence, key, ReferenceEquals(without, state) ? delta : ByteString.CopyFrom(without.ToBytes()), origin));
            }
        }

        public (List<CrdtKeyState> Deltas, long LastSequence)? After(long afterSequence, int countMax, ulong recipient)
        {
            if (afterSequence >= LastSequence)
            {
                return ([], LastSequence);
            }

            var firstKept = _entries.Count == 0 ? LastSequence + 1 : _entries.Peek().Sequence;
            if (afterSequence + 1 < firstKept)
            {
                return null;
            }

            var deltas = new List<CrdtKeyState>();
            var last = afterSequence;
            foreach (var (sequence, key, delta, origin) in _entries)
            {
                if (sequence <= afterSequence)
                {
                    continue;
                }

                if (deltas.Count >= countMax)
                {
                    break;
                }

                // Never back to the replica it came from: that one made it durable before sending.
                if (recipient == 0 || origin != recipient)
                {
                    deltas.Add(new CrdtKeyState { Key = key, State = delta });
                }

                last = sequence;
            }

            return (deltas, last);
        }
    }
}
