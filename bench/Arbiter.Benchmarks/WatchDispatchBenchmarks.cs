using Arbiter.Node;
using Arbiter.Node.Watch;
using Arbiter.Protocol.Etcd;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Arbiter.Benchmarks;

/// <summary>
/// Watch event dispatch through an in-memory node: one Put, then wait until each of
/// <see cref="WatcherCount"/> watch streams (all on the key's prefix) has read the event — the
/// propose/apply path plus WatchHub publish and per-stream delivery.
/// Noisy by nature (thread hand-offs), so the iteration budget is fixed rather than adaptive.
/// </summary>
[WarmupCount(3)]
[IterationCount(10)]
[InvocationCount(1024)]
public class WatchDispatchBenchmarks : IDisposable
{
    private readonly List<WatchStream> _streams = [];
    private readonly List<Task> _readers = [];
    private ArbiterNode _node = null!;
    private CancellationTokenSource _stop = null!;
    private PutRequest _put = null!;
    private int _remaining;
    private TaskCompletionSource _allDelivered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Watch streams, one watch each.</summary>
    [Params(1, 16, 256)]
    public int WatcherCount { get; set; }

    /// <summary>Starts the node and the watch streams and their readers.</summary>
    [GlobalSetup]
    public async Task SetupAsync()
    {
        _node = await ArbiterNode.StartAsync(new NodeOptions());
        _stop = new CancellationTokenSource();
        _put = new PutRequest { Key = ByteString.CopyFromUtf8("/bench/watched"), Value = Commands.Value(256) };
        for (var i = 0; i < WatcherCount; i++)
        {
            var stream = _node.OpenWatchStream();
            stream.Create(new WatchCreateRequest { Key = Commands.Prefix, RangeEnd = Commands.PrefixEnd });
            _streams.Add(stream);
            _readers.Add(Task.Run(() => ReadAsync(stream, _stop.Token)));
        }

        // Wait until every watch is created and synced: one put, all deliveries.
        await PutAndWaitAsync();
    }

    /// <summary>One put delivered to every watcher.</summary>
    [Benchmark]
    public Task PutAndWaitAsync()
    {
        _allDelivered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _remaining, WatcherCount);
        return PutThenWaitAsync();
    }

    /// <summary>Stops readers, streams and the node.</summary>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await _stop.CancelAsync();
        foreach (var stream in _streams)
        {
            await stream.DisposeAsync();
        }

        try
        {
            await Task.WhenAll(_readers);
        }
        catch (OperationCanceledException)
        {
            // Readers end by cancellation.
        }

        await _node.DisposeAsync();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stop?.Dispose();
        GC.SuppressFinalize(this);
    }

    private async Task PutThenWaitAsync()
    {
        await _node.PutAsync(_put);
        await _allDelivered.Task;
    }

    private async Task ReadAsync(WatchStream stream, CancellationToken cancellationToken)
    {
        await foreach (var response in stream.ReadAllAsync(cancellationToken))
        {
            for (var i = 0; i < response.Events.Count; i++)
            {
                if (Interlocked.Decrement(ref _remaining) == 0)
                {
                    _allDelivered.TrySetResult();
                }
            }
        }
    }
}
