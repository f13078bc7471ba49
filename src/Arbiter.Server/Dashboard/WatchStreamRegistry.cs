using System.Collections.Concurrent;
using Arbiter.Node.Watch;

namespace Arbiter.Server.Dashboard;

/// <summary>
/// The client watch streams open on this member (the Watch RPC registers each for its lifetime),
/// so that the dashboard can list watches per stream. The node's own internal streams (the lock and
/// election services' waits) are not clients' and are not listed.
/// </summary>
public sealed class WatchStreamRegistry
{
    private readonly ConcurrentDictionary<long, OpenWatchStream> _streams = new();
    private long _nextStreamId;

    /// <summary>Registers <paramref name="stream"/> until the returned handle is disposed.</summary>
    /// <param name="stream">The node watch stream serving the call.</param>
    /// <param name="peer">The client's address, as gRPC reports it.</param>
    public IDisposable Register(WatchStream stream, string peer)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var id = Interlocked.Increment(ref _nextStreamId);
        _streams[id] = new OpenWatchStream(id, peer ?? string.Empty, DateTimeOffset.UtcNow, stream);
        return new Registration(this, id);
    }

    /// <summary>The open streams, oldest first.</summary>
    public IReadOnlyList<OpenWatchStream> Snapshot() => [.. _streams.Values.OrderBy(s => s.StreamId)];

    private sealed class Registration(WatchStreamRegistry registry, long id) : IDisposable
    {
        public void Dispose() => registry._streams.TryRemove(id, out _);
    }
}

/// <summary>One client watch stream open on this member.</summary>
/// <param name="StreamId">This member's number for the stream (not etcd's; streams have none).</param>
/// <param name="Peer">The client's address.</param>
/// <param name="OpenedAt">When the stream was opened.</param>
/// <param name="Stream">The node stream, for its live watches.</param>
public sealed record OpenWatchStream(long StreamId, string Peer, DateTimeOffset OpenedAt, WatchStream Stream);
