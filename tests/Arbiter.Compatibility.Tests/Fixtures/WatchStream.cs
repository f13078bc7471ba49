using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>A raw Watch stream: send requests, read responses one by one with deadlines.</summary>
public sealed class WatchStream : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<WatchRequest, WatchResponse> _call;
    private readonly CancellationTokenSource _stop = new();

    public WatchStream(GrpcChannel channel) => _call = new Watch.WatchClient(channel).Watch(cancellationToken: _stop.Token);

    public Task SendAsync(WatchRequest request) => _call.RequestStream.WriteAsync(request);

    public Task CreateAsync(WatchCreateRequest create) => SendAsync(new WatchRequest { CreateRequest = create });

    /// <summary>Next response, or TimeoutException.</summary>
    public async Task<WatchResponse> ReadAsync(TimeSpan timeout)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        cts.CancelAfter(timeout);
        try
        {
            return await _call.ResponseStream.MoveNext(cts.Token)
                ? _call.ResponseStream.Current
                : throw new InvalidOperationException("watch stream ended");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && !_stop.IsCancellationRequested)
        {
            throw new TimeoutException($"no watch response within {timeout}", e);
        }
    }

    /// <summary>Reads responses until <paramref name="eventCount"/> events arrived (batching may differ).</summary>
    public async Task<List<Arbiter.Protocol.Mvcc.Event>> ReadEventsAsync(int eventCount, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var events = new List<Arbiter.Protocol.Mvcc.Event>();
        while (events.Count < eventCount)
        {
            var left = deadline - DateTime.UtcNow;
            var response = await ReadAsync(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
            events.AddRange(response.Events);
        }

        return events;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _call.Dispose();
        _stop.Dispose();
    }
}
