using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Recipes;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.History;
using Google.Protobuf;
using Grpc.Core;
using LockApi = Arbiter.Protocol.Lock;

namespace Arbiter.Verification.Workloads;

/// <summary>
/// Locks with fencing: half of the workers take <c>lock/mutex</c> with the <see cref="DistributedMutex"/>
/// recipe, the others <c>lock/service</c> with the etcd Lock service (v3lock), each hold on a lease
/// of its own granted just before. A holder writes twice through the harness's
/// <see cref="FencedStore"/> with its fencing token (the lock key's create revision), then releases.
/// Checked with <see cref="LockChecker"/>: no double grant, no two holds overlapping while their
/// leases certainly held (lease grant invocation + TTL), tokens increase with grant order, and the
/// store never accepted an older token after a newer one.
/// </summary>
public sealed class LockWorkload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "lock";

    /// <inheritdoc/>
    public Task RunAsync(WorkloadContext context, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, Math.Max(2, context.Options.Clients)).Select(w => Task.Run(() => WorkerAsync(context, w, stop), CancellationToken.None)));

    private static async Task WorkerAsync(WorkloadContext context, int worker, CancellationToken stop)
    {
        var random = new Random(unchecked((context.Seed * 37) + worker));
        var useRecipe = worker % 2 == 0;
        var name = $"{context.Options.KeyPrefix}lock/{(useRecipe ? "mutex" : "service")}";
        var endpoint = worker % context.Endpoints.Count;
        var process = context.Recorder.NewProcess();
        while (!stop.IsCancellationRequested)
        {
            var url = context.Endpoints[endpoint];
            var ok = useRecipe
                ? await RecipeHoldAsync(context, worker, process, name, url, random, stop).ConfigureAwait(false)
                : await ServiceHoldAsync(context, worker, process, name, url, random, stop).ConfigureAwait(false);
            if (!ok)
            {
                process = context.Recorder.NewProcess();
                endpoint = (endpoint + 1) % context.Endpoints.Count;
                await Task.Delay(random.Next(50, 200), CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    private static long TtlNs(WorkloadContext context) => context.Options.LeaseTtlSeconds * 1_000_000_000L;

    private static async Task<bool> RecipeHoldAsync(WorkloadContext context, int worker, int process, string name, string url, Random random, CancellationToken stop)
    {
        var recorder = context.Recorder;
        var options = new ArbiterClientOptions { CallTimeoutMs = context.Options.CallTimeoutMs, RetryAttemptsMax = 1 };
        options.Endpoints.Add(url);
        await using var client = ArbiterClient.Connect(options);
        var grantedAt = recorder.NowNs;
        Session session;
        try
        {
            session = await client.CreateSessionAsync(TimeSpan.FromSeconds(context.Options.LeaseTtlSeconds), context.ClientFaults.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or TimeoutException)
        {
            return false;
        }

        await using (session.ConfigureAwait(false))
        {
            var id = recorder.Invoke(process, OperationKind.Acquire, name);
            DistributedLockHandle handle;
            try
            {
                using var limit = CancellationTokenSource.CreateLinkedTokenSource(context.ClientFaults.Token);
                limit.CancelAfter(TimeSpan.FromSeconds(10));
                handle = await new DistributedMutex(client, name, new RecipeOptions { Session = session }).AcquireAsync(TimeSpan.FromSeconds(10), limit.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException or TimeoutException or LockLostException)
            {
                // Lost while waiting (no keep-alive got through for the whole TTL) counts as unknown too.
                recorder.Complete(id, OperationStatus.Info, note: $"via {url}: {e.GetType().Name} {e.Message}");
                return false;
            }

            recorder.Complete(id, OperationStatus.Ok, revision: handle.FencingToken, note: $"via {url}");
            await HoldAsync(context, worker, process, name, handle.FencingToken, grantedAt, random, () => handle.DisposeAsync().AsTask()).ConfigureAwait(false);
            return true;
        }
    }

    private static async Task<bool> ServiceHoldAsync(WorkloadContext context, int worker, int process, string name, string url, Random random, CancellationToken stop)
    {
        var recorder = context.Recorder;
        var channel = context.Channel(url);
        var leases = new Lease.LeaseClient(channel);
        var grantedAt = recorder.NowNs;
        long lease;
        try
        {
            lease = (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = context.Options.LeaseTtlSeconds }, deadline: context.Deadline(), cancellationToken: context.ClientFaults.Token).ConfigureAwait(false)).ID;
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            return false;
        }

        var id = recorder.Invoke(process, OperationKind.Acquire, name);
        try
        {
            var locked = await new LockApi.Lock.LockClient(channel).LockAsync(new LockApi.LockRequest { Name = ByteString.CopyFromUtf8(name), Lease = lease }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: context.ClientFaults.Token).ConfigureAwait(false);
            var range = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = locked.Key }, deadline: context.Deadline(), cancellationToken: context.ClientFaults.Token).ConfigureAwait(false);
            if (range.Kvs.Count == 0)
            {
                // The lease ran out between the grant and the read: held for no known time.
                recorder.Complete(id, OperationStatus.Info, note: $"via {url}: lock key gone before its token was read");
                return false;
            }

            var token = range.Kvs[0].CreateRevision;
            recorder.Complete(id, OperationStatus.Ok, revision: token, note: $"via {url}");
            await HoldAsync(context, worker, process, name, token, grantedAt, random, async () =>
            {
                await new LockApi.Lock.LockClient(channel).UnlockAsync(new LockApi.UnlockRequest { Key = locked.Key }, deadline: context.Deadline()).ConfigureAwait(false);
                await leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease }, deadline: context.Deadline()).ConfigureAwait(false);
            }).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            recorder.Complete(id, OperationStatus.Info, note: $"via {url}: {RegisterWorkload.Describe(e)}");
            return false;
        }
    }

    private static async Task HoldAsync(WorkloadContext context, int worker, int process, string name, long token, long grantedAt, Random random, Func<Task> release)
    {
        var recorder = context.Recorder;
        var acquiredAt = recorder.NowNs;
        for (var i = 0; i < 2; i++)
        {
            var value = $"w{worker}-t{token}-{i}";
            var id = recorder.Invoke(process, OperationKind.FencedWrite, name, value, revision: token);
            var accepted = context.Store.Write(recorder.NowNs, name, worker, token, value);
            recorder.Complete(id, OperationStatus.Ok, succeeded: accepted);
            await Task.Delay(random.Next(0, 30), CancellationToken.None).ConfigureAwait(false);
        }

        var releasedAt = recorder.NowNs;
        context.Holds.Enqueue(new LockHold(worker, name, token, acquiredAt, releasedAt, grantedAt + TtlNs(context)));
        var releaseId = recorder.Invoke(process, OperationKind.Release, name, revision: token);
        try
        {
            await release().ConfigureAwait(false);
            recorder.Complete(releaseId, OperationStatus.Ok);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            // The lease ends it anyway; the hold's claim ended when the release began.
            recorder.Complete(releaseId, OperationStatus.Info, note: RegisterWorkload.Describe(e));
        }
    }

    /// <inheritdoc/>
    public WorkloadCheck Check(HistoryFile history)
    {
        var violations = LockChecker.Check(history.Holds, history.Store);
        var refused = history.Store.Count(e => !e.Accepted);
        return new WorkloadCheck(violations.Count == 0 ? Verdict.Ok : Verdict.Violation, violations, $"{history.Holds.Count} holds on {history.Holds.Select(h => h.Lock).Distinct().Count()} locks, {history.Store.Count} fenced writes ({refused} refused as stale)");
    }
}
