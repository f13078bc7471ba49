using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;

namespace Arbiter.Node.Watch;

/// <summary>
/// Delivers applied events to the watchers that are in sync, and hands the rest to their
/// stream's catch-up worker. <see cref="Publish"/> runs under the state write lock.
/// </summary>
public sealed class WatchHub : IDisposable
{
    private readonly object _gate = new();
    private readonly List<Watcher> _synced = [];
    private int _watcherCount;
    private readonly Timer _progressTimer;

    internal WatchHub(NodeOptions options, Func<ResponseHeader> newHeader)
    {
        Options = options;
        NewHeader = newHeader;
        var intervalMs = options.WatchProgressNotifyIntervalMs;
        _progressTimer = new Timer(_ => NotifyProgress(), null, intervalMs, intervalMs);
    }

    internal NodeOptions Options { get; }

    /// <summary>A header with cluster id, member id and raft term filled; revision left to the caller.</summary>
    internal Func<ResponseHeader> NewHeader { get; }

    internal StateHost Host { get; set; } = null!;

    /// <summary>How many watches are open on every stream of this member (synced or catching up).</summary>
    public int WatcherCount => Volatile.Read(ref _watcherCount);

    internal void CountWatchers(int delta) => Interlocked.Add(ref _watcherCount, delta);

    /// <summary>How many watchers receive events as they are applied.</summary>
    public int SyncedWatcherCount
    {
        get
        {
            lock (_gate)
            {
                return _synced.Count;
            }
        }
    }

    internal void AddSynced(Watcher watcher)
    {
        lock (_gate)
        {
            watcher.Synced = true;
            _synced.Add(watcher);
        }
    }

    internal void Remove(Watcher watcher)
    {
        lock (_gate)
        {
            watcher.Synced = false;
            _synced.Remove(watcher);
        }
    }

    /// <summary>Delivers the events of one applied command (possibly several revisions).</summary>
    internal void Publish(IReadOnlyList<Event> events, long currentRevision, long compactRevision)
    {
        _ = currentRevision;
        _ = compactRevision;
        if (events.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            if (_synced.Count == 0)
            {
                return;
            }

            var start = 0;
            while (start < events.Count)
            {
                var revision = events[start].Kv.ModRevision;
                var end = start;
                while (end < events.Count && events[end].Kv.ModRevision == revision)
                {
                    end++;
                }

                PublishRevision(events, start, end, revision);
                start = end;
            }
        }
    }

    private void PublishRevision(IReadOnlyList<Event> events, int start, int end, long revision)
    {
        List<Watcher>? fellBehind = null;
        foreach (var watcher in _synced)
        {
            if (watcher.NextRevision > revision)
            {
                continue;
            }

            List<Event>? matched = null;
            for (var i = start; i < end; i++)
            {
                var projected = watcher.Project(events[i]);
                if (projected is not null)
                {
                    (matched ??= []).Add(projected);
                }
            }

            if (matched is null)
            {
                watcher.NextRevision = revision + 1;
                continue;
            }

            if (watcher.Stream.IsBacklogged)
            {
                // The client reads too slowly: stop pushing and let it catch up from history,
                // which is bounded by what the client consumes (etcd's "victim" watchers).
                watcher.NextRevision = revision;
                (fellBehind ??= []).Add(watcher);
                continue;
            }

            var header = NewHeader();
            header.Revision = revision;
            var response = new WatchResponse { Header = header, WatchId = watcher.Id };
            response.Events.AddRange(matched);
            watcher.Stream.EnqueueEvents(watcher, response);
            watcher.NextRevision = revision + 1;
        }

        if (fellBehind is not null)
        {
            foreach (var watcher in fellBehind)
            {
                watcher.Synced = false;
                _synced.Remove(watcher);
                watcher.Stream.ScheduleCatchUp(watcher);
            }
        }
    }

    /// <summary>Sends every synced watcher to catch up from history (the state was replaced under them).</summary>
    internal void ResyncAll()
    {
        lock (_gate)
        {
            foreach (var watcher in _synced)
            {
                watcher.Synced = false;
                watcher.Stream.ScheduleCatchUp(watcher);
            }

            _synced.Clear();
        }
    }

    private void NotifyProgress()
    {
        List<Watcher> due;
        lock (_gate)
        {
            due = [.. _synced.Where(w => w.ProgressNotify)];
        }

        if (due.Count == 0)
        {
            return;
        }

        var revision = Host.Read(s => s.Revision);
        foreach (var watcher in due)
        {
            if (!watcher.EventsSinceProgress && watcher.Synced && !watcher.Canceled)
            {
                var header = NewHeader();
                header.Revision = revision;
                watcher.Stream.EnqueueControl(new WatchResponse { Header = header, WatchId = watcher.Id });
            }

            watcher.EventsSinceProgress = false;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _progressTimer.Dispose();
}
