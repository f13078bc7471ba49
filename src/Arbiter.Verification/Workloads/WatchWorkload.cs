using Arbiter.Protocol.Etcd;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.History;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Verification.Workloads;

/// <summary>
/// Watches against the KV history: writers put unique values under a prefix (recording each put
/// and its revision), two watchers watch the prefix with progress notifications, each resuming after
/// a broken stream from the revision after the last it saw (on the next member). At the end the
/// writers stop and the watchers are given time to catch up to the final revision. Checked with
/// <see cref="WatchChecker"/> (ordered, unique, atomic, bookmarkable, reliable, resumable, and agreement
/// with the KV history) and, for the writes, <see cref="LinearizabilityChecker"/>.
/// </summary>
public sealed class WatchWorkload : IWorkload
{
    private const int Watchers = 2;
    private int _streams;

    /// <inheritdoc/>
    public string Name => "watch";

    /// <inheritdoc/>
    public async Task RunAsync(WorkloadContext context, CancellationToken stop)
    {
        var prefix = context.Options.KeyPrefix + "w/";
        using var watchersStop = new CancellationTokenSource();
        var seen = new long[Watchers];
        var watchers = Enumerable.Range(0, Watchers).Select(w => Task.Run(() => WatcherAsync(context, w, prefix, seen, watchersStop.Token), CancellationToken.None)).ToList();
        var writers = Enumerable.Range(0, Math.Max(1, context.Options.Clients - Watchers)).Select(w => Task.Run(() => WriterAsync(context, w, prefix, stop), CancellationToken.None)).ToList();
        await Task.WhenAll(writers).ConfigureAwait(false);

        // Let the watchers catch up with the last revision (bounded: the checker judges what arrived).
        var final = await FinalRevisionAsync(context).ConfigureAwait(false);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (final > 0 && DateTime.UtcNow < deadline && seen.Any(s => Volatile.Read(ref s) < final))
        {
            await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
        }

        context.Recorder.Note("watch", $"final revision {final}; watchers reached {string.Join(", ", seen)}");
        await watchersStop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(watchers).ConfigureAwait(false);
    }

    private static async Task<long> FinalRevisionAsync(WorkloadContext context)
    {
        for (var attempt = 0; attempt < 40; attempt++)
        {
            try
            {
                var endpoint = context.Endpoints[attempt % context.Endpoints.Count];
                var response = await new KV.KVClient(context.Channel(endpoint)).RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("\0"), Limit = 1 }, deadline: context.Deadline()).ConfigureAwait(false);
                return response.Header.Revision;
            }
            catch (RpcException)
            {
                await Task.Delay(250).ConfigureAwait(false);
            }
        }

        return 0;
    }

    private static async Task WriterAsync(WorkloadContext context, int writer, string prefix, CancellationToken stop)
    {
        var random = new Random(unchecked((context.Seed * 41) + writer));
        var recorder = context.Recorder;
        var process = recorder.NewProcess();
        var endpoint = writer % context.Endpoints.Count;
        for (var sequence = 0; !stop.IsCancellationRequested; sequence++)
        {
            var key = $"{prefix}k{random.Next(5)}";
            var value = $"c{writer}-{sequence}";
            var url = context.Endpoints[endpoint];
            var id = recorder.Invoke(process, OperationKind.Write, key, value);
            try
            {
                var response = await new KV.KVClient(context.Channel(url)).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) }, deadline: context.Deadline(), cancellationToken: context.ClientFaults.Token).ConfigureAwait(false);
                recorder.Complete(id, OperationStatus.Ok, revision: response.Header.Revision, note: $"via {url}");
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                recorder.Complete(id, OperationStatus.Info, note: $"via {url}: {RegisterWorkload.Describe(e)}");
                process = recorder.NewProcess();
                endpoint = (endpoint + 1) % context.Endpoints.Count;
            }
        }
    }

    private async Task WatcherAsync(WorkloadContext context, int watcher, string prefix, long[] seen, CancellationToken stop)
    {
        var endpoint = watcher % context.Endpoints.Count;
        long startRevision = 0;
        while (!stop.IsCancellationRequested)
        {
            var url = context.Endpoints[endpoint];
            var responses = new List<WatchResponseRecord>();
            long created = 0;
            var streamId = Interlocked.Increment(ref _streams) - 1;
            try
            {
                using var call = new Watch.WatchClient(context.Channel(url)).Watch(cancellationToken: stop);
                var request = new WatchCreateRequest { Key = ByteString.CopyFromUtf8(prefix), RangeEnd = ByteString.CopyFromUtf8(prefix[..^1] + (char)(prefix[^1] + 1)), StartRevision = startRevision, ProgressNotify = true };
                await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = request }, stop).ConfigureAwait(false);
                using var progress = new Timer(_ => _ = call.RequestStream.WriteAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() }).ContinueWith(static t => t.Exception, TaskScheduler.Default), null, 1000, 1000);
                using var silence = new CancellationTokenSource();
                while (true)
                {
                    // A member that stops answering (paused, cut off) ends the stream after a while without progress.
                    silence.CancelAfter(TimeSpan.FromSeconds(6));
                    using var either = CancellationTokenSource.CreateLinkedTokenSource(stop, silence.Token);
                    if (!await call.ResponseStream.MoveNext(either.Token).ConfigureAwait(false))
                    {
                        break;
                    }

                    if (!silence.TryReset())
                    {
                        break;
                    }

                    var response = call.ResponseStream.Current;
                    if (response.Created)
                    {
                        created = response.Header.Revision;
                        continue;
                    }

                    if (response.Canceled)
                    {
                        context.Recorder.Note("watch", $"watcher {watcher} stream {streamId} cancelled: {response.CancelReason} (compact revision {response.CompactRevision})");
                        break;
                    }

                    var events = response.Events.Select(e => new WatchEventRecord(e.Kv.ModRevision, e.Kv.Key.ToStringUtf8(), e.Type == Protocol.Mvcc.Event.Types.EventType.Put ? e.Kv.Value.ToStringUtf8() : null)).ToList();
                    responses.Add(new WatchResponseRecord(context.Recorder.NowNs, response.Header.Revision, events.Count == 0, events));
                    var reached = events.Count > 0 ? events[^1].Revision : response.Header.Revision;
                    Volatile.Write(ref seen[watcher], Math.Max(Volatile.Read(ref seen[watcher]), reached));
                }
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException or InvalidOperationException)
            {
                if (!stop.IsCancellationRequested)
                {
                    context.Recorder.Note("watch", $"watcher {watcher} stream {streamId} via {url} broke: {e.GetType().Name} {e.Message}");
                }
            }

            context.Watches.Enqueue(new WatchStreamRecord(streamId, prefix, startRevision, created, responses));

            // Resume after the last event seen; otherwise from where this stream was to start.
            var lastEvent = responses.SelectMany(r => r.Events).Select(e => e.Revision).DefaultIfEmpty(0).Max();
            startRevision = lastEvent > 0 ? lastEvent + 1 : startRevision > 0 ? startRevision : created > 0 ? created + 1 : 0;
            endpoint = (endpoint + 1) % context.Endpoints.Count;
            if (!stop.IsCancellationRequested)
            {
                await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc/>
    public WorkloadCheck Check(HistoryFile history)
    {
        var watch = WatchChecker.Check(history.Watches, history.Operations);
        var kv = LinearizabilityChecker.Check(history.Operations);
        var violations = watch.Concat(kv.Violations).ToList();
        var verdict = violations.Count > 0 ? Verdict.Violation : kv.Verdict;
        var events = history.Watches.Sum(w => w.Responses.Sum(r => r.Events.Count));
        return new WorkloadCheck(verdict, violations, $"{history.Watches.Count} watch streams, {events} events against {history.Operations.Count} writes; writes linearizable: {kv.Verdict}");
    }
}
