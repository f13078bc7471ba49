using System.Collections.Concurrent;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// Writes keys one after another through the members a callback names, for as long
/// as it runs, and remembers every write that was acknowledged. Failures (a member stopping, no
/// leader for a moment) are counted and retried with the next key, never assumed applied.
/// </summary>
internal sealed class BackgroundWriter : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, string> _acknowledged = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Func<IReadOnlyList<ArbiterClusterMember>> _targets;
    private readonly string _prefix;
    private readonly Task _loop;
    private int _failures;

    public BackgroundWriter(string prefix, Func<IReadOnlyList<ArbiterClusterMember>> targets)
    {
        _prefix = prefix;
        _targets = targets;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Key → value of every acknowledged write.</summary>
    public IReadOnlyDictionary<string, string> Acknowledged => _acknowledged;

    public int Failures => Volatile.Read(ref _failures);

    public int Count => _acknowledged.Count;

    /// <summary>Waits until at least <paramref name="count"/> more writes are acknowledged.</summary>
    public async Task WaitForMoreAsync(int count, TimeSpan timeout)
    {
        var target = Count + count;
        var deadline = DateTime.UtcNow + timeout;
        while (Count < target)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"writer reached {Count} of {target} acknowledged writes ({Failures} failures)");
            }

            await Task.Delay(20);
        }
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
    }

    private async Task LoopAsync()
    {
        var channels = new Dictionary<string, Grpc.Net.Client.GrpcChannel>(StringComparer.Ordinal);
        try
        {
            for (var i = 0; !_stop.IsCancellationRequested; i++)
            {
                var targets = _targets();
                if (targets.Count == 0)
                {
                    await Task.Delay(20);
                    continue;
                }

                var member = targets[i % targets.Count];
                if (!channels.TryGetValue(member.Endpoint, out var channel))
                {
                    channel = member.OpenChannel();
                    channels[member.Endpoint] = channel;
                }

                var key = $"{_prefix}{i:D6}";
                var value = $"v{i}";
                try
                {
                    await new KV.KVClient(channel).PutAsync(
                        new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) },
                        deadline: DateTime.UtcNow.AddSeconds(10));
                    _acknowledged[key] = value;
                }
                catch (RpcException)
                {
                    Interlocked.Increment(ref _failures);
                    await Task.Delay(20);
                }
            }
        }
        finally
        {
            foreach (var channel in channels.Values)
            {
                channel.Dispose();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        _stop.Dispose();
    }
}

/// <summary>Conditions on a cluster's members, each waited for with a deadline.</summary>
internal static class ClusterChecks
{
    public static async Task<T> CallAsync<T>(ArbiterClusterMember member, Func<CallInvoker, Task<T>> call)
    {
        using var channel = member.OpenChannel();
        return await call(channel.CreateCallInvoker());
    }

    public static Task<MemberListResponse> MemberListAsync(ArbiterClusterMember member) =>
        CallAsync(member, c => new Protocol.Etcd.Cluster.ClusterClient(c).MemberListAsync(new MemberListRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);

    public static Task<StatusResponse> StatusAsync(ArbiterClusterMember member) =>
        CallAsync(member, c => new Maintenance.MaintenanceClient(c).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);

    /// <summary>Waits until <paramref name="condition"/> holds; the message says what was last seen.</summary>
    public static async Task WaitUntilAsync(string what, TimeSpan timeout, Func<Task<(bool Done, string Seen)>> condition, string? logs = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        var seen = "nothing yet";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var (done, now) = await condition();
                seen = now;
                if (done)
                {
                    return;
                }
            }
            catch (RpcException e)
            {
                seen = $"{e.StatusCode}: {e.Status.Detail}";
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"{what}: not within {timeout}; last seen {seen}\n{logs}");
    }

    /// <summary>Waits until <paramref name="member"/> follows a leader and has applied everything it knows committed.</summary>
    public static Task WaitJoinedAsync(ArbiterCluster cluster, ArbiterClusterMember member, TimeSpan timeout) =>
        WaitUntilAsync($"{member.Name} joined", timeout, async () =>
        {
            var list = await MemberListAsync(member);
            var status = await StatusAsync(member);
            var listed = list.Members.Any(m => m.ID == status.Header.MemberId && m.Name == member.Name);
            return (listed && status.Leader != 0, $"listed={listed} leader={status.Leader:x} applied={status.RaftAppliedIndex}");
        }, cluster.Logs);

    /// <summary>
    /// Waits until every member in <paramref name="members"/> is at the same revision with the same
    /// HashKV, and returns that revision.
    /// </summary>
    public static async Task<long> WaitConvergedAsync(IReadOnlyList<ArbiterClusterMember> members, TimeSpan timeout, string? logs = null)
    {
        long revision = 0;
        await WaitUntilAsync("members converged (same revision and HashKV)", timeout, async () =>
        {
            var hashes = new List<(string Name, long Revision, uint Hash)>();
            foreach (var member in members)
            {
                var hash = await CallAsync(member, c => new Maintenance.MaintenanceClient(c).HashKVAsync(new HashKVRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
                hashes.Add((member.Name, hash.Header.Revision, hash.Hash));
            }

            revision = hashes[0].Revision;
            var done = hashes.TrueForAll(h => h.Revision == hashes[0].Revision && h.Hash == hashes[0].Hash);
            return (done, string.Join(", ", hashes.Select(h => $"{h.Name}@{h.Revision}:{h.Hash:x8}")));
        }, logs);
        return revision;
    }

    /// <summary>Every acknowledged key, read locally (serializable) on <paramref name="member"/>, has its value.</summary>
    public static async Task AssertHasAllAsync(ArbiterClusterMember member, string prefix, IReadOnlyDictionary<string, string> acknowledged)
    {
        var range = await CallAsync(member, c => new KV.KVClient(c).RangeAsync(
            new RangeRequest { Key = ByteString.CopyFromUtf8(prefix), RangeEnd = ByteString.CopyFromUtf8(PrefixEnd(prefix)), Serializable = true },
            deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
        var stored = range.Kvs.ToDictionary(kv => kv.Key.ToStringUtf8(), kv => kv.Value.ToStringUtf8(), StringComparer.Ordinal);
        var missing = acknowledged.Where(a => !stored.TryGetValue(a.Key, out var v) || v != a.Value).Select(a => a.Key).Order(StringComparer.Ordinal).ToList();
        Assert.True(missing.Count == 0, $"{member.Name} lacks {missing.Count} acknowledged writes, e.g. {string.Join(", ", missing.Take(5))}");
    }

    public static string PrefixEnd(string prefix) => prefix[..^1] + (char)(prefix[^1] + 1);
}
