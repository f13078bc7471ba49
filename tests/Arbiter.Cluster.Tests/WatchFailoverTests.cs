using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// Watches across a leader kill: one on a follower that stays up, one on the leader that dies
/// (its client resumes on another member from the last revision it saw + 1). Both see every
/// event exactly once, in revision order.
/// </summary>
public sealed class WatchFailoverTests(ITestOutputHelper output)
{
    private const string Prefix = "watched/";

    [Fact]
    public async Task Watches_on_a_follower_and_on_the_killed_leader_see_every_event_once_in_order()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = cluster.Running.First(m => m != leader);
        var startRevision = (await ClusterKit.StatusAsync(leader)).Header.Revision + 1;

        await using var onFollower = new ResumingWatch(cluster, follower, Prefix, startRevision);
        await using var onLeader = new ResumingWatch(cluster, leader, Prefix, startRevision);
        await onFollower.WaitCreatedAsync();
        await onLeader.WaitCreatedAsync();

        var writers = new Writers(cluster, Prefix, 2, clock);
        List<AckedWrite> acked;
        await using (writers)
        {
            await writers.WaitForAcksAsync(30, TimeSpan.FromSeconds(30));
            await leader.KillAsync();
            var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"killed leader {leader.Name}; {newLeader.Name} leads; watch on {follower.Name} and (resuming) on {leader.Name}");
            await writers.WaitForAcksAsync(30, TimeSpan.FromSeconds(30));
        }

        acked = writers.Acked.ToList();
        var (revision, _) = await ClusterKit.WaitConvergedAsync(cluster, acked.Max(w => w.Revision));
        foreach (var watch in new[] { onFollower, onLeader })
        {
            await ClusterKit.WaitUntilAsync(
                $"{watch.Name} delivers every event",
                ClusterKit.ConvergeTimeout,
                () => Task.FromResult(watch.LastRevision >= revision),
                () => $"{watch.Name} saw up to revision {watch.LastRevision}, want {revision}; errors: {string.Join(" | ", watch.Errors)}");
        }

        // A write whose client gave up while the leader died (outcome unknown) may still commit after
        // the writers stopped, so what a watch must deliver is read once the store has applied the
        // last revision either watch saw. Every key is written once, so the store's keys are exactly
        // the events (including writes whose client saw a failure but which committed).
        var seenBy = new[] { onFollower, onLeader }.Select(watch => (watch, Seen: watch.Revisions)).ToList();
        var top = seenBy.Max(w => w.Seen.Count == 0 ? 0 : w.Seen.Max());
        await ClusterKit.WaitConvergedAsync(cluster, top);
        var expected = (await ClusterKit.ReadLocalAsync(follower, Prefix)).Values.Select(kv => kv.ModRevision).Where(r => r <= top).Order().ToList();
        Assert.All(acked, w => Assert.Contains(w.Revision, expected));
        foreach (var (watch, seen) in seenBy)
        {
            output.WriteLine($"{watch.Name}: {seen.Count} events up to revision {top}, {watch.Errors.Count} reconnects: {string.Join(" | ", watch.Errors.Take(3))}");
            Assert.Equal(expected.Where(r => r <= (seen.Count == 0 ? 0 : seen.Max())), seen);
            Assert.Empty(watch.HeaderViolations);
        }
    }
}

/// <summary>
/// A client's watch on one prefix: starts on one member; when its stream breaks it
/// reopens on the next running member from the last revision it received + 1.
/// </summary>
internal sealed class ResumingWatch : BackgroundLoop
{
    private readonly ArbiterCluster _cluster;
    private readonly string _prefix;
    private readonly TaskCompletionSource _created = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<long> _revisions = [];
    private long _lastRevision;

    public ResumingWatch(ArbiterCluster cluster, ArbiterClusterMember first, string prefix, long startRevision)
    {
        _cluster = cluster;
        _prefix = prefix;
        Name = $"watch opened on {first.Name}";
        _lastRevision = startRevision - 1;
        Start(() => RunAsync(first));
    }

    public string Name { get; }

    public long LastRevision => Interlocked.Read(ref _lastRevision);

    /// <summary>Revisions of the events received, in arrival order (duplicates kept, to be caught).</summary>
    public List<long> Revisions
    {
        get
        {
            lock (_revisions)
            {
                return [.. _revisions];
            }
        }
    }

    public List<string> Errors { get; } = [];

    /// <summary>Responses whose header names another member than the one that sent them.</summary>
    public List<string> HeaderViolations { get; } = [];

    public Task WaitCreatedAsync() => _created.Task.WaitAsync(TimeSpan.FromSeconds(30));

    private async Task RunAsync(ArbiterClusterMember first)
    {
        var member = first;
        while (!Stop.IsCancellationRequested)
        {
            try
            {
                using var channel = GrpcChannel.ForAddress(member.Endpoint);
                using var call = new Watch.WatchClient(channel).Watch(cancellationToken: Stop.Token);
                await call.RequestStream.WriteAsync(new WatchRequest
                {
                    CreateRequest = new WatchCreateRequest
                    {
                        Key = ClusterKit.Bytes(_prefix),
                        RangeEnd = ClusterKit.PrefixEnd(_prefix),
                        StartRevision = LastRevision + 1,
                    },
                });
                while (await call.ResponseStream.MoveNext(Stop.Token))
                {
                    var response = call.ResponseStream.Current;
                    if (response.Header.MemberId != member.MemberId)
                    {
                        lock (Errors)
                        {
                            HeaderViolations.Add($"watch response from {member.Name} ({member.MemberId:x}) carries member id {response.Header.MemberId:x}");
                        }
                    }

                    if (response.Created)
                    {
                        _created.TrySetResult();
                    }

                    if (response.Canceled || response.CompactRevision != 0)
                    {
                        throw new InvalidOperationException($"watch on {member.Name} canceled: {response.CancelReason} (compacted {response.CompactRevision})");
                    }

                    lock (_revisions)
                    {
                        foreach (var e in response.Events)
                        {
                            _revisions.Add(e.Kv.ModRevision);
                            Interlocked.Exchange(ref _lastRevision, Math.Max(_lastRevision, e.Kv.ModRevision));
                        }
                    }
                }

                throw new RpcException(new Status(StatusCode.Unavailable, "watch stream ended"));
            }
            catch (RpcException e) when (!Stop.IsCancellationRequested)
            {
                lock (Errors)
                {
                    Errors.Add($"{member.Name}: {e.StatusCode} {e.Status.Detail}; resuming from {LastRevision + 1}");
                }

                // As an etcd client does: the next endpoint.
                var members = _cluster.Members;
                var at = members.ToList().IndexOf(member);
                do
                {
                    at = (at + 1) % members.Count;
                }
                while (!members[at].IsRunning);
                member = members[at];
                await Task.Delay(50);
            }
            catch (RpcException)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

}
