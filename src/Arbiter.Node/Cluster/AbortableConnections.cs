using System.Collections.Concurrent;
using System.Net.Sockets;

namespace Arbiter.Node.Cluster;

/// <summary>
/// The TCP connections of one channel to another member, kept so that they can be aborted: closed
/// at once with a reset, their unsent bytes discarded. A write forwarded to a leader that a
/// partition cuts off waits in the connection's send buffer, and TCP keeps retransmitting it for
/// up to ~15 minutes; closed the ordinary way, the kernel still delivers it once the network heals,
/// long after the follower answered its client "request timed out" (PartitionTests caught such a
/// write applied after the heal). Aborting the connection when a forwarded write is given up on
/// means that write either reached the leader before, or never will.
/// </summary>
internal sealed class AbortableConnections
{
    private readonly ConcurrentDictionary<Socket, byte> _open = new();

    /// <summary>For <see cref="SocketsHttpHandler.ConnectCallback"/>: connects as the handler would, and keeps the socket.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _open[socket] = 0;
        return new TrackedStream(this, socket);
    }

    /// <summary>Resets every open connection, discarding what it has not sent yet; the channel opens new ones for later calls.</summary>
    public int AbortAll()
    {
        var aborted = 0;
        foreach (var socket in _open.Keys)
        {
            if (_open.TryRemove(socket, out _))
            {
                try
                {
                    // Linger on with a zero timeout: close sends a reset and drops the send buffer.
                    socket.LingerState = new LingerOption(true, 0);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    // Already closed: nothing is left to send.
                }

                socket.Dispose();
                aborted++;
            }
        }

        return aborted;
    }

    private sealed class TrackedStream(AbortableConnections owner, Socket socket) : NetworkStream(socket, ownsSocket: true)
    {
        protected override void Dispose(bool disposing)
        {
            owner._open.TryRemove(Socket, out _);
            base.Dispose(disposing);
        }
    }
}
