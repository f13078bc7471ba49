using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;

namespace Arbiter.Node.Watch;

/// <summary>
/// Many watches multiplexed on one ordered response stream, as etcd's Watch RPC does.
/// Control responses (created, canceled, progress) and events share one queue, so a watch's
/// "created" always precedes its events, and creates are answered in the order they arrive.
/// </summary>
public sealed class WatchStream : IAsyncDisposable
{
    /// <summary>The watch id etcd uses for responses not tied to one watch.</summary>
    public const long InvalidWatchId = -1;

    private readonly WatchHub _hub;
    private readonly Channel<(WatchResponse Response, int SizeBytes)> _responses = Channel.CreateUnbounded<(WatchResponse, int)>(
        new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<Watcher> _catchUp = Channel.CreateUnbounded<Watcher>(
        new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<long, Watcher> _watchers = [];
    private readonly object _gate = new();
    private readonly Task _catchUpWorker;
    private readonly CancellationTokenSource _closed = new();
    private TaskCompletionSource _spaceAvailable = NewSignal();
    private int _pendingCount;
    private long _pendingBytes;
    private long _nextAutoId;

    internal WatchStream(WatchHub hub)
    {
        _hub = hub;
        _catchUpWorker = Task.Run(CatchUpLoopAsync);
    }

    internal bool IsBacklogged =>
        Volatile.Read(ref _pendingCount) >= _hub.Options.WatchStreamPendingResponsesMax
        || Interlocked.Read(ref _pendingBytes) >= _hub.Options.WatchStreamPendingBytesMax;

    /// <summary>
    /// Completes once the responses queued for the client are under the stream's bounds (at
    /// once if they are): a reader of the client's requests awaits this before each request, so a
    /// client that sends requests but never reads the answers stops being read (back-pressure).
    /// </summary>
    public async ValueTask WaitWhileBackloggedAsync(CancellationToken cancellationToken)
    {
        while (IsBacklogged && !_closed.IsCancellationRequested)
        {
            var signal = Volatile.Read(ref _spaceAvailable);
            if (!IsBacklogged)
            {
                break;
            }

            await signal.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            Interlocked.CompareExchange(ref _spaceAvailable, NewSignal(), signal);
        }
    }

    /// <summary>Number of live watches on this stream.</summary>
    public int WatchCount
    {
        get
        {
            lock (_gate)
            {
                return _watchers.Count;
            }
        }
    }

    /// <summary>Responses queued for the client and not sent yet (a slow reader shows here).</summary>
    public int PendingResponses => Volatile.Read(ref _pendingCount);

    /// <summary>The live watches of this stream, by id (a copy: for the dashboard).</summary>
    public IReadOnlyList<WatchDescription> DescribeWatches()
    {
        lock (_gate)
        {
            return [.. _watchers.Values.OrderBy(w => w.Id).Select(w => new WatchDescription(
                w.Id, w.Key, w.RangeEnd, w.NextRevision, w.Synced, w.PrevKv, w.FilterPut, w.FilterDelete))];
        }
    }

    /// <summary>Creates a watch; the "created" response (or a refusal) is queued before any of its events.</summary>
    public void Create(WatchCreateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);

        // Normalize as etcd does: empty key means "\0"; range_end "\0" means "every key ≥ key".
        var key = request.Key.Length == 0 ? [0] : request.Key.ToByteArray();
        byte[]? rangeEnd = request.RangeEnd.Length switch
        {
            0 => null,
            1 when request.RangeEnd[0] == 0 => [],
            _ => request.RangeEnd.ToByteArray(),
        };

        var identity = Auth.CallIdentity.Current;
        _hub.Host.Read(state =>
        {
            var currentRevision = state.Revision;
            if ((state.Auth.Enabled || ReferenceEquals(identity, Auth.AuthIdentity.InvalidToken)) && WatchPermissionError(state, request, identity) is { } refusal)
            {
                Refuse(currentRevision, refusal);
                return 0;
            }

            if (rangeEnd is { Length: > 0 } && key.AsSpan().SequenceCompareTo(rangeEnd) >= 0)
            {
                Refuse(currentRevision, "mvcc: watcher range is empty");
                return 0;
            }

            Watcher watcher;
            lock (_gate)
            {
                if (_watchers.Count >= _hub.Options.WatchesPerStreamMax)
                {
                    Refuse(currentRevision, $"arbiter: too many watches on this stream (limit {_hub.Options.WatchesPerStreamMax}, --max-watches-per-stream); cancel one or open another stream");
                    return 0;
                }

                long id;
                if (request.WatchId != 0)
                {
                    id = request.WatchId;
                    if (_watchers.ContainsKey(id))
                    {
                        Refuse(currentRevision, "mvcc: duplicate watch ID provided on the WatchStream");
                        return 0;
                    }
                }
                else
                {
                    while (_watchers.ContainsKey(_nextAutoId))
                    {
                        _nextAutoId++;
                    }

                    id = _nextAutoId++;
                }

                watcher = new Watcher(id, this, key, rangeEnd)
                {
                    FilterPut = request.Filters.Contains(WatchCreateRequest.Types.FilterType.Noput),
                    FilterDelete = request.Filters.Contains(WatchCreateRequest.Types.FilterType.Nodelete),
                    PrevKv = request.PrevKv,
                    Fragment = request.Fragment,
                    ProgressNotify = request.ProgressNotify,
                    NextRevision = request.StartRevision == 0 ? currentRevision + 1 : request.StartRevision,
                };
                _watchers.Add(id, watcher);
                _hub.CountWatchers(1);
            }

            var header = _hub.NewHeader();
            header.Revision = currentRevision;
            EnqueueControl(new WatchResponse { Header = header, WatchId = watcher.Id, Created = true });

            // Registering under the read lock means no apply can slip between "created" and sync.
            if (watcher.NextRevision > currentRevision)
            {
                _hub.AddSynced(watcher);
            }
            else
            {
                ScheduleCatchUp(watcher);
            }

            return 0;
        });
    }

    /// <summary>Cancels a watch; unknown ids are ignored, as etcd does.</summary>
    public void Cancel(long watchId)
    {
        Watcher? watcher;
        lock (_gate)
        {
            if (!_watchers.Remove(watchId, out watcher))
            {
                return;
            }

            _hub.CountWatchers(-1);
            watcher.Canceled = true;
        }

        _hub.Remove(watcher);
        var header = _hub.NewHeader();
        header.Revision = _hub.Host.Read(s => s.Revision);
        EnqueueControl(new WatchResponse { Header = header, WatchId = watchId, Canceled = true });
    }

    /// <summary>Answers a progress request with the current revision (watch id -1, as etcd 3.4).</summary>
    public void RequestProgress()
    {
        var header = _hub.NewHeader();
        header.Revision = _hub.Host.Read(s => s.Revision);
        EnqueueControl(new WatchResponse { Header = header, WatchId = InvalidWatchId });
    }

    /// <summary>The responses, in order, until the stream is disposed.</summary>
    public async IAsyncEnumerable<WatchResponse> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var reader = _responses.Reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (reader.TryRead(out var item))
            {
                var bytes = Interlocked.Add(ref _pendingBytes, -item.SizeBytes);
                if (Interlocked.Decrement(ref _pendingCount) < _hub.Options.WatchStreamPendingResponsesMax / 2
                    && bytes < _hub.Options.WatchStreamPendingBytesMax / 2)
                {
                    Volatile.Read(ref _spaceAvailable).TrySetResult();
                }

                yield return item.Response;
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        List<Watcher> all;
        lock (_gate)
        {
            all = [.. _watchers.Values];
            _watchers.Clear();
            _hub.CountWatchers(-all.Count);
        }

        foreach (var watcher in all)
        {
            watcher.Canceled = true;
            _hub.Remove(watcher);
        }

        await _closed.CancelAsync().ConfigureAwait(false);
        _catchUp.Writer.TryComplete();
        _responses.Writer.TryComplete();
        Volatile.Read(ref _spaceAvailable).TrySetResult();
        try
        {
            await _catchUpWorker.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        _closed.Dispose();
    }

    internal void EnqueueControl(WatchResponse response) => Enqueue(response, response.CalculateSize());

    private void Enqueue(WatchResponse response, int sizeBytes)
    {
        Interlocked.Increment(ref _pendingCount);
        Interlocked.Add(ref _pendingBytes, sizeBytes);
        if (!_responses.Writer.TryWrite((response, sizeBytes)))
        {
            Interlocked.Decrement(ref _pendingCount);
            Interlocked.Add(ref _pendingBytes, -sizeBytes);
        }
    }

    internal void EnqueueEvents(Watcher watcher, WatchResponse response)
    {
        watcher.EventsSinceProgress = true;
        var sizeBytes = response.CalculateSize();
        if (!watcher.Fragment || response.Events.Count < 2 || sizeBytes <= _hub.Options.Limits.RequestSizeBytesMax)
        {
            Enqueue(response, sizeBytes);
            return;
        }

        // Split into fragments no larger than the request limit (each holds at least one event);
        // all but the last are marked fragment = true, as etcd's sendFragments does.
        var limit = _hub.Options.Limits.RequestSizeBytesMax;
        var current = new WatchResponse { Header = response.Header, WatchId = response.WatchId };
        var size = current.CalculateSize();
        foreach (var e in response.Events)
        {
            var eventSize = e.CalculateSize() + 4;
            if (current.Events.Count > 0 && size + eventSize > limit)
            {
                current.Fragment = true;
                EnqueueControl(current);
                current = new WatchResponse { Header = response.Header, WatchId = response.WatchId };
                size = current.CalculateSize();
            }

            current.Events.Add(e);
            size += eventSize;
        }

        EnqueueControl(current);
    }

    internal void ScheduleCatchUp(Watcher watcher) => _catchUp.Writer.TryWrite(watcher);

    /// <summary>
    /// etcd 3.4's isWatchPermitted: READ on the watched range, refused with the gRPC error's text
    /// as the cancel reason. As etcd, a range end of "\0" is checked as the single key.
    /// </summary>
    private static string? WatchPermissionError(StateMachine state, WatchCreateRequest request, Auth.AuthIdentity? identity)
    {
        if (ReferenceEquals(identity, Auth.AuthIdentity.InvalidToken))
        {
            return $"rpc error: code = Unauthenticated desc = {Core.Auth.AuthErrors.InvalidAuthToken.Message}";
        }

        var rangeEnd = request.RangeEnd is { Length: 1 } end && end[0] == 0 ? Google.Protobuf.ByteString.Empty : request.RangeEnd;
        var error = state.CheckRangePermission(identity?.User, identity?.Revision ?? 0, request.Key, rangeEnd);
        if (error is null)
        {
            return null;
        }

        // etcd reports the user-empty, old-revision and invalid-token errors as themselves, any other as permission denied.
        var reported = error == Core.Auth.AuthErrors.UserEmpty || error == Core.Auth.AuthErrors.AuthOldRevision ? error : Core.Auth.AuthErrors.PermissionDenied;
        return $"rpc error: code = {GrpcCodeName(reported.StatusCode)} desc = {reported.Message}";
    }

    private static string GrpcCodeName(ErrorStatusCode code) => code switch
    {
        ErrorStatusCode.InvalidArgument => "InvalidArgument",
        ErrorStatusCode.PermissionDenied => "PermissionDenied",
        ErrorStatusCode.Unauthenticated => "Unauthenticated",
        _ => code.ToString(),
    };

    private void Refuse(long revision, string reason)
    {
        var header = _hub.NewHeader();
        header.Revision = revision;
        EnqueueControl(new WatchResponse
        {
            Header = header,
            WatchId = InvalidWatchId,
            Created = true,
            Canceled = true,
            CancelReason = reason,
        });
    }

    private async Task CatchUpLoopAsync()
    {
        var token = _closed.Token;
        await foreach (var watcher in _catchUp.Reader.ReadAllAsync(token).ConfigureAwait(false))
        {
            while (!watcher.Canceled && !watcher.Synced && !token.IsCancellationRequested)
            {
                await WaitWhileBackloggedAsync(token).ConfigureAwait(false);

                _hub.Host.Read(state => CatchUpStep(state, watcher));
            }
        }
    }

    /// <summary>One bounded step of history replay; switches the watcher to synced when it reaches the head.</summary>
    private int CatchUpStep(StateMachine state, Watcher watcher)
    {
        if (watcher.Canceled)
        {
            return 0;
        }

        // etcd's rule: a watcher whose next revision is below the compaction point is canceled.
        if (watcher.NextRevision < state.CompactRevision)
        {
            CancelCompacted(watcher, state.CompactRevision);
            return 0;
        }

        EventHistorySlice slice;
        try
        {
            slice = state.ReadEvents(Math.Max(watcher.NextRevision, 1), _hub.Options.WatchCatchUpEventsMax);
        }
        catch (EtcdException e) when (e.Error == EtcdError.Compacted)
        {
            CancelCompacted(watcher, state.CompactRevision);
            return 0;
        }

        List<Event>? matched = null;
        foreach (var e in slice.Events)
        {
            var projected = watcher.Project(e);
            if (projected is not null)
            {
                (matched ??= []).Add(projected);
            }
        }

        if (matched is not null)
        {
            var header = _hub.NewHeader();
            header.Revision = state.Revision;
            var response = new WatchResponse { Header = header, WatchId = watcher.Id };
            response.Events.AddRange(matched);
            EnqueueEvents(watcher, response);
        }

        watcher.NextRevision = Math.Max(watcher.NextRevision, slice.NextRevision);
        if (watcher.NextRevision > state.Revision)
        {
            _hub.AddSynced(watcher);
        }

        return 0;
    }

    private void CancelCompacted(Watcher watcher, long compactRevision)
    {
        lock (_gate)
        {
            if (_watchers.Remove(watcher.Id))
            {
                _hub.CountWatchers(-1);
            }

            watcher.Canceled = true;
        }

        // etcd answers with the compaction point and a zero header revision.
        var header = _hub.NewHeader();
        EnqueueControl(new WatchResponse
        {
            Header = header,
            WatchId = watcher.Id,
            Canceled = true,
            CompactRevision = compactRevision,
        });
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
