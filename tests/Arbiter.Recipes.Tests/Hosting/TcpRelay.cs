using System.Net;
using System.Net.Sockets;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Recipes.Tests.Hosting;

/// <summary>
/// A loopback TCP relay in front of a real server: <see cref="Cut"/> resets every connection and
/// refuses new ones (as a network outage would) until <see cref="Restore"/>, on the same port. Lets a
/// test change the server while one client cannot see it, with no race against the client's retries.
/// </summary>
public sealed class TcpRelay : IAsyncDisposable
{
    private readonly int _targetPort;
    private readonly List<Socket> _open = [];
    private TcpListener? _listener;
    private CancellationTokenSource? _accepting;

    private TcpRelay(int targetPort)
    {
        _targetPort = targetPort;
        Port = PortAllocator.FreePort();
    }

    /// <summary>The port clients connect to.</summary>
    public int Port { get; }

    /// <summary>"http://127.0.0.1:port".</summary>
    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>Starts relaying from a fresh port to <paramref name="targetPort"/>.</summary>
    public static TcpRelay Start(int targetPort)
    {
        var relay = new TcpRelay(targetPort);
        relay.Restore();
        return relay;
    }

    /// <summary>Accepts and relays connections again.</summary>
    public void Restore()
    {
        lock (_open)
        {
            if (_listener != null)
            {
                return;
            }

            var listener = new TcpListener(IPAddress.Loopback, Port);
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Start();
            _listener = listener;
            _accepting = new CancellationTokenSource();
            _ = AcceptLoopAsync(listener, _accepting.Token);
        }
    }

    /// <summary>Resets every relayed connection and stops listening (connections are refused).</summary>
    public void Cut()
    {
        lock (_open)
        {
            _accepting?.Cancel();
            _listener?.Stop();
            _listener = null;
            foreach (var socket in _open)
            {
                Reset(socket);
            }

            _open.Clear();
        }
    }

    public ValueTask DisposeAsync()
    {
        Cut();
        return ValueTask.CompletedTask;
    }

    private async Task AcceptLoopAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket downstream;
            try
            {
                downstream = await listener.AcceptSocketAsync(cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await upstream.ConnectAsync(IPAddress.Loopback, _targetPort, cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                Reset(downstream);
                Reset(upstream);
                continue;
            }

            lock (_open)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    Reset(downstream);
                    Reset(upstream);
                    return;
                }

                _open.Add(downstream);
                _open.Add(upstream);
            }

            _ = PumpAsync(downstream, upstream);
            _ = PumpAsync(upstream, downstream);
        }
    }

    private static async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Reset(from);
            Reset(to);
        }
    }

    private static void Reset(Socket socket)
    {
        try
        {
            // Linger 0: close with a reset, as a broken network path looks to the peers.
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }
}
