using System.Net;
using System.Net.Sockets;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>Hands out loopback ports the OS reports free (never etcd's defaults 2379/2380).</summary>
public static class PortAllocator
{
    private static readonly HashSet<int> Handed = [];

    public static int FreePort()
    {
        while (true)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            lock (Handed)
            {
                // Two fixtures starting at once must not get the same port before either binds it.
                if (port is not 2379 and not 2380 && Handed.Add(port))
                {
                    return port;
                }
            }
        }
    }
}
