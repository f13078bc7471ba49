using Grpc.Net.Client;

namespace Arbiter.Bench;

/// <summary>
/// The "connections" of a run: one <see cref="GrpcChannel"/> per connection, each pinned to a single
/// HTTP/2 connection, spread round-robin over the endpoints. Clients share them round-robin.
/// </summary>
public sealed class EtcdConnections : IDisposable
{
    private readonly GrpcChannel[] _channels;

    /// <summary>Opens <paramref name="count"/> channels over <paramref name="endpoints"/>.</summary>
    public EtcdConnections(IReadOnlyList<string> endpoints, int count)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (endpoints.Count == 0)
        {
            throw new ArgumentException("at least one endpoint is needed", nameof(endpoints));
        }

        _channels = new GrpcChannel[count];
        for (var i = 0; i < count; i++)
        {
            var handler = new SocketsHttpHandler
            {
                // One channel = exactly one TCP connection, so --connections means what it says.
                EnableMultipleHttp2Connections = false,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                ConnectTimeout = TimeSpan.FromSeconds(5),
            };
            _channels[i] = GrpcChannel.ForAddress(endpoints[i % endpoints.Count], new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                MaxReceiveMessageSize = null,
                MaxSendMessageSize = null,
            });
        }
    }

    /// <summary>Number of channels.</summary>
    public int Count => _channels.Length;

    /// <summary>The channel client <paramref name="clientIndex"/> uses.</summary>
    public GrpcChannel For(int clientIndex) => _channels[clientIndex % _channels.Length];

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }
}
