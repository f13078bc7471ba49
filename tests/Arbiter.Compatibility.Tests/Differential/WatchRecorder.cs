using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Differential;

/// <summary>
/// A watch stream whose events (and any cancellation) are recorded as normalized JSON, in order,
/// ignoring how the server batched them into responses.
/// </summary>
public sealed class WatchRecorder : IAsyncDisposable
{
    private readonly AsyncDuplexStreamingCall<WatchRequest, WatchResponse> _call;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _entries = [];
    private readonly TaskCompletionSource _created = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _reader;
    private long _lastRevision;

    private WatchRecorder(GrpcChannel channel) => _call = new Watch.WatchClient(channel).Watch(cancellationToken: _stop.Token);

    public IReadOnlyList<string> Entries
    {
        get
        {
            lock (_entries)
            {
                return [.. _entries];
            }
        }
    }

    /// <summary>Opens the watch and waits for the server to confirm it.</summary>
    public static async Task<WatchRecorder> StartAsync(GrpcChannel channel, WatchCreateRequest create, TimeSpan timeout)
    {
        var recorder = new WatchRecorder(channel);
        recorder._reader = recorder.ReadAsync();
        await recorder._call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = create });
        await recorder._created.Task.WaitAsync(timeout);
        return recorder;
    }

    /// <summary>Waits until an event at or after <paramref name="revision"/> arrived (or the watch ended).</summary>
    public async Task WaitForRevisionAsync(long revision, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Interlocked.Read(ref _lastRevision) < revision && !_reader!.IsCompleted)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"watch saw revision {Interlocked.Read(ref _lastRevision)}, expected {revision} within {timeout}");
            }

            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_reader != null)
        {
            try
            {
                await _reader;
            }
            catch (RpcException)
            {
                // Canceled by us.
            }
            catch (OperationCanceledException)
            {
                // Canceled by us.
            }
        }

        _call.Dispose();
        _stop.Dispose();
    }

    private async Task ReadAsync()
    {
        try
        {
            await foreach (var response in _call.ResponseStream.ReadAllAsync(_stop.Token))
            {
                if (response.Created)
                {
                    _created.TrySetResult();
                }

                lock (_entries)
                {
                    if (response.Canceled || response.CompactRevision != 0)
                    {
                        _entries.Add($"canceled={response.Canceled} compact_revision={response.CompactRevision} reason={response.CancelReason}");
                    }

                    _entries.AddRange(response.Events.Select(e => Normalizer.ToJson(Normalizer.Normalize(e))));
                }

                if (response.Events.Count > 0)
                {
                    Interlocked.Exchange(ref _lastRevision, response.Events[^1].Kv.ModRevision);
                }
            }
        }
        catch (Exception e) when (!_stop.IsCancellationRequested)
        {
            _created.TrySetException(e);
            lock (_entries)
            {
                _entries.Add($"stream failed: {e.Message}");
            }
        }
    }
}
