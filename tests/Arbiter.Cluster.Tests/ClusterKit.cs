using System.Collections.Concurrent;
using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// Helpers shared by every cluster test: calls to one member, waiting on conditions with a deadline,
/// convergence, and the check that every acknowledged write is present.
/// </summary>
internal static class ClusterKit
{
    /// <summary>Generous: the machine is small and shared with other clusters.</summary>
    public static readonly TimeSpan ConvergeTimeout = TimeSpan.FromSeconds(60);

    public static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    /// <summary>The range end that covers every key starting with <paramref name="prefix"/>.</summary>
    public static ByteString PrefixEnd(string prefix)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(prefix);
        bytes[^1]++;
        return ByteString.CopyFrom(bytes);
    }

    /// <summary>One call on a channel of its own to <paramref name="member"/>.</summary>
    public static async Task<T> CallAsync<T>(ArbiterClusterMember member, Func<CallInvoker, Task<T>> call)
    {
        using var channel = member.OpenChannel();
        return await call(channel.CreateCallInvoker());
    }

    /// <summary>Waits until every member in <paramref name="members"/> reports the same leader, one of them.</summary>
    public static async Task<ArbiterClusterMember> WaitForAgreedLeaderAsync(IReadOnlyList<ArbiterClusterMember> members, TimeSpan timeout)
    {
        ArbiterClusterMember? agreed = null;
        await WaitUntilAsync(
            $"{string.Join(", ", members.Select(m => m.Name))} agree on a leader among them",
            timeout,
            async () =>
            {
                var leaders = new HashSet<ulong>();
                foreach (var member in members)
                {
                    leaders.Add((await ArbiterCluster.TryStatusAsync(member))?.Leader ?? 0);
                }

                agreed = leaders is { Count: 1 } ? members.FirstOrDefault(m => m.MemberId == leaders.First()) : null;
                return agreed is not null;
            });
        return agreed!;
    }

    /// <inheritdoc cref="LeaderLossRetry.RetryAsync"/>
    public static Task<T> RetryOnLeaderLossAsync<T>(string what, Func<Task<T>> call, ITestOutputHelper output) =>
        LeaderLossRetry.RetryAsync(what, call, output.WriteLine);

    public static Task<StatusResponse> StatusAsync(ArbiterClusterMember member) =>
        CallAsync(member, c => new Maintenance.MaintenanceClient(c).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);

    public static Task<MemberListResponse> MemberListAsync(ArbiterClusterMember member) =>
        CallAsync(member, c => new Protocol.Etcd.Cluster.ClusterClient(c).MemberListAsync(new MemberListRequest(), deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);

    /// <summary>
    /// Polls <paramref name="condition"/> every 50 ms until it holds and returns how long that took; an
    /// <see cref="RpcException"/> (a member starting, electing, or down) counts as "not yet". On timeout
    /// fails with <paramref name="what"/>, <paramref name="lastSeen"/>'s answer (or the last error) and the logs of
    /// <paramref name="cluster"/> as they are then.
    /// </summary>
    public static async Task<TimeSpan> WaitUntilAsync(string what, TimeSpan timeout, Func<Task<bool>> condition, Func<string>? lastSeen = null, ArbiterCluster? cluster = null)
    {
        var clock = Stopwatch.StartNew();
        var error = string.Empty;
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return clock.Elapsed;
                }

                error = string.Empty;
            }
            catch (RpcException e)
            {
                error = $"{e.StatusCode}: {e.Status.Detail}";
            }

            if (clock.Elapsed >= timeout)
            {
                var seen = string.Join("; ", new[] { lastSeen?.Invoke(), error }.Where(s => !string.IsNullOrEmpty(s)));
                throw new TimeoutException($"not within {timeout}: {what} (last seen: {(seen.Length == 0 ? "nothing" : seen)}){(cluster is null ? string.Empty : "\n" + cluster.Logs)}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Waits until <paramref name="member"/> is listed under its name and follows a leader.</summary>
    public static Task WaitJoinedAsync(ArbiterCluster cluster, ArbiterClusterMember member, TimeSpan timeout)
    {
        var seen = string.Empty;
        return WaitUntilAsync(
            $"{member.Name} joined",
            timeout,
            async () =>
            {
                var list = await MemberListAsync(member);
                var status = await StatusAsync(member);
                var listed = list.Members.Any(m => m.ID == status.Header.MemberId && m.Name == member.Name);
                seen = $"listed={listed} leader={status.Leader:x} applied={status.RaftAppliedIndex}";
                return listed && status.Leader != 0;
            },
            () => seen,
            cluster);
    }

    /// <summary>
    /// Waits until every running member has applied a common revision, at least <paramref name="revisionMin"/>,
    /// and has the same HashKV there; returns that revision and hash. With no writes going on, that
    /// is every member's current revision.
    /// </summary>
    public static async Task<(long Revision, uint Hash)> WaitConvergedAsync(ArbiterCluster cluster, long revisionMin = 0, TimeSpan? timeout = null)
    {
        // Compared at one revision every member has applied (the lowest current one), not at each
        // member's current revision: writes that go on while the members are asked in turn would
        // otherwise keep the revisions apart however well the members agree.
        var seen = new List<(string Name, long Revision, uint Hash)>();
        await WaitUntilAsync(
            $"every running member agreeing on HashKV at a revision they all applied (at least {revisionMin})",
            timeout ?? ConvergeTimeout,
            async () =>
            {
                seen.Clear();
                var members = cluster.Running.ToList();
                var common = long.MaxValue;
                foreach (var member in members)
                {
                    common = Math.Min(common, (await StatusAsync(member)).Header.Revision);
                }

                if (members.Count == 0 || common < revisionMin)
                {
                    return false;
                }

                foreach (var member in members)
                {
                    var hash = await CallAsync(member, c => new Maintenance.MaintenanceClient(c).HashKVAsync(new HashKVRequest { Revision = common }, deadline: DateTime.UtcNow.AddSeconds(10)).ResponseAsync);
                    seen.Add((member.Name, common, hash.Hash));
                }

                return seen.TrueForAll(h => h.Hash == seen[0].Hash);
            },
            () => seen.Count == 0 ? "no common revision reached yet" : string.Join(", ", seen.Select(h => $"{h.Name}@{h.Revision}:{h.Hash:x8}")),
            cluster);
        return (seen[0].Revision, seen[0].Hash);
    }

    /// <summary>Every key under <paramref name="prefix"/> as this member's own state has it (serializable: no leader involved).</summary>
    public static async Task<Dictionary<string, Arbiter.Protocol.Mvcc.KeyValue>> ReadLocalAsync(ArbiterClusterMember member, string prefix)
    {
        using var channel = member.OpenChannel();
        var response = await new KV.KVClient(channel).RangeAsync(
            new RangeRequest { Key = Bytes(prefix), RangeEnd = PrefixEnd(prefix), Serializable = true },
            deadline: DateTime.UtcNow.AddSeconds(30));
        return response.Kvs.ToDictionary(kv => kv.Key.ToStringUtf8(), kv => kv);
    }

    /// <summary>
    /// Fails unless every acknowledged write is on every running member with its value and revision.
    /// Each member is first given until <see cref="ConvergeTimeout"/> to apply the newest acknowledged
    /// revision: a follower may still be one entry behind when the others agree (seen in CI: a
    /// convergence check at the lowest common revision passed, and the last write was not yet applied).
    /// </summary>
    public static async Task AssertAllPresentAsync(ArbiterCluster cluster, string prefix, IReadOnlyCollection<AckedWrite> acked, ITestOutputHelper output)
    {
        var newest = acked.Count == 0 ? 0 : acked.Max(w => w.Revision);
        foreach (var member in cluster.Running.ToList())
        {
            await WaitUntilAsync(
                $"{member.Name} applied revision {newest}, the newest acknowledged",
                ConvergeTimeout,
                async () => (await StatusAsync(member)).Header.Revision >= newest,
                cluster: cluster);
            var kvs = await ReadLocalAsync(member, prefix);
            var missing = acked.Where(w => !kvs.TryGetValue(w.Key, out var kv) || kv.Value.ToStringUtf8() != w.Value || kv.ModRevision != w.Revision).ToList();
            output.WriteLine($"{member.Name}: {kvs.Count} keys under {prefix}, {acked.Count} acknowledged, {missing.Count} missing or different");
            Assert.True(
                missing.Count == 0,
                $"{member.Name} lacks {missing.Count} acknowledged write(s), e.g. {string.Join("; ", missing.Take(5))}\n{cluster.Logs}");
        }
    }

    /// <summary>Writes the server log lines that report errors (and a few lines after each), so that a passing run still shows them.</summary>
    public static void WriteServerProblems(ArbiterCluster cluster, ITestOutputHelper output)
    {
        foreach (var member in cluster.Members)
        {
            var lines = member.Log.Split('\n');
            var shown = 0;
            for (var i = 0; i < lines.Length && shown < 40; i++)
            {
                if (lines[i].Contains("fail:", StringComparison.Ordinal) || lines[i].Contains("crit:", StringComparison.Ordinal))
                {
                    foreach (var line in lines.Skip(i).Take(6))
                    {
                        output.WriteLine($"[{member.Name}] {line}");
                        shown++;
                    }
                }
            }
        }
    }

    /// <summary>How many snapshots each member took and installed (from its log), to show which paths a run exercised.</summary>
    public static void WriteSnapshotActivity(ArbiterCluster cluster, ITestOutputHelper output)
    {
        output.WriteLine("snapshots taken/restored-or-installed: " + string.Join(", ", cluster.Members.Select(m =>
        {
            var log = m.Log;
            return $"{m.Name} {CountOf(log, "Raft snapshot at applied index")}/{CountOf(log, "Installed Raft snapshot")}";
        })));
    }

    private static int CountOf(string text, string what)
    {
        var count = 0;
        for (var at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>HashKV of every running member at the same (current, converged) revision; asserts they are equal.</summary>
    public static async Task AssertHashKvEqualAsync(ArbiterCluster cluster, long revision, ITestOutputHelper output)
    {
        var hashes = new List<(string Name, uint Hash)>();
        foreach (var member in cluster.Running.ToList())
        {
            using var channel = member.OpenChannel();
            var response = await new Maintenance.MaintenanceClient(channel).HashKVAsync(new HashKVRequest { Revision = revision }, deadline: DateTime.UtcNow.AddSeconds(30));
            hashes.Add((member.Name, response.Hash));
        }

        output.WriteLine($"HashKV at {revision}: {string.Join(", ", hashes.Select(h => $"{h.Name}={h.Hash:x8}"))}");
        Assert.Single(hashes.Select(h => h.Hash).Distinct());
    }
}

/// <summary>A write the cluster acknowledged: what, where, at which revision, answered by whom in which term.</summary>
internal sealed record AckedWrite(string Key, string Value, long Revision, ulong MemberId, ulong Term, string AnsweredBy, TimeSpan SentAt, TimeSpan AckedAt);

/// <summary>A write that failed: when it was sent and answered (on the writers' clock), by whom, and with what status.</summary>
internal sealed record FailedWrite(string Key, string Via, TimeSpan SentAt, TimeSpan FailedAt, Grpc.Core.StatusCode StatusCode, string Detail);

/// <summary>
/// Clients writing unique keys continuously and recording every acknowledged write. By default each
/// writer starts on its own member and moves to the next running member when a call fails (as etcd
/// clients do); with <c>rotate</c> each write goes to the next of the members <c>targets</c> names.
/// A failed write has an unknown outcome: its key is never reused, and never counted.
/// </summary>
internal sealed class Writers : IAsyncDisposable
{
    private readonly ArbiterCluster _cluster;
    private readonly string _prefix;
    private readonly Func<IReadOnlyList<ArbiterClusterMember>> _targets;
    private readonly bool _rotate;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly Stopwatch _clock;
    private readonly TimeSpan _callDeadline;
    private volatile bool _draining;

    /// <param name="cluster">Whose logs a timeout shows.</param>
    /// <param name="prefix">Every key starts with it.</param>
    /// <param name="count">How many writers, each one write at a time.</param>
    /// <param name="clock">The clock <see cref="AckedWrite.SentAt"/> and <see cref="AckedWrite.AckedAt"/> are read from; a new one if null.</param>
    /// <param name="targets">The members to write through, asked before each write; every member of the cluster if null.</param>
    /// <param name="rotate">Each write to the next target (true), or stay on one until a call fails (false).</param>
    /// <param name="callDeadline">Each write's client deadline; 15 s if null.</param>
    public Writers(ArbiterCluster cluster, string prefix, int count = 1, Stopwatch? clock = null, Func<IReadOnlyList<ArbiterClusterMember>>? targets = null, bool rotate = false, TimeSpan? callDeadline = null)
    {
        _callDeadline = callDeadline ?? TimeSpan.FromSeconds(15);
        _cluster = cluster;
        _prefix = prefix;
        _clock = clock ?? Stopwatch.StartNew();
        _targets = targets ?? (() => cluster.Members);
        _rotate = rotate;
        for (var i = 0; i < count; i++)
        {
            var writer = i;
            _loops.Add(Task.Run(() => WriteLoopAsync(writer)));
        }
    }

    public ConcurrentQueue<AckedWrite> Acked { get; } = new();

    public ConcurrentQueue<string> Failures { get; } = new();

    /// <summary>Every failed write with its status, for tests that judge how writes fail.</summary>
    public ConcurrentQueue<FailedWrite> FailedCalls { get; } = new();

    /// <summary>Writes by one writer must get increasing revisions (each starts after the previous one was acknowledged).</summary>
    public ConcurrentQueue<string> Violations { get; } = new();

    /// <summary>Elapsed time (on the shared clock) of the first acknowledged write that was sent at or after <paramref name="since"/>.</summary>
    public TimeSpan? FirstAckSentAfter(TimeSpan since) => Acked.Where(w => w.SentAt >= since).Select(w => (TimeSpan?)w.AckedAt).Min();

    /// <summary>Waits until at least <paramref name="count"/> more writes are acknowledged.</summary>
    public async Task WaitForAcksAsync(int count, TimeSpan timeout)
    {
        var target = Acked.Count + count;
        await ClusterKit.WaitUntilAsync(
            $"{count} more acknowledged writes",
            timeout,
            () => Task.FromResult(Acked.Count >= target),
            () => $"{Acked.Count}/{target} acknowledged; failures: {string.Join(" | ", Failures.TakeLast(5))}",
            _cluster);
    }

    /// <summary>Stops every writer (a write in flight is cancelled: unknown outcome, not counted) and waits for them.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops);
    }

    /// <summary>
    /// Stops sending writes and waits until the writes in flight have ended by themselves
    /// (answered, failed, or run into their deadline), so that every write sent is judged.
    /// </summary>
    public async Task DrainAsync()
    {
        _draining = true;
        await Task.WhenAll(_loops);
    }

    private async Task WriteLoopAsync(int writer)
    {
        var at = writer;
        long lastRevision = 0;
        var channels = new Dictionary<ArbiterClusterMember, GrpcChannel>();
        for (var sequence = 0; !_stop.IsCancellationRequested && !_draining; sequence++)
        {
            var members = _targets();
            if (members.Count == 0)
            {
                await Task.Delay(20);
                continue;
            }

            var member = members[(_rotate ? writer + sequence : at) % members.Count];
            if (!member.IsRunning)
            {
                at++;
                await Task.Delay(10);
                continue;
            }

            var key = $"{_prefix}{writer}/{sequence:D6}";
            var value = $"w{writer}-{sequence}";
            var sent = _clock.Elapsed;
            try
            {
                if (!channels.TryGetValue(member, out var channel))
                {
                    channel = member.OpenChannel();
                    channels[member] = channel;
                }

                var response = await new KV.KVClient(channel).PutAsync(
                    new PutRequest { Key = ClusterKit.Bytes(key), Value = ClusterKit.Bytes(value) },
                    deadline: DateTime.UtcNow + _callDeadline,
                    cancellationToken: _stop.Token);
                var acked = _clock.Elapsed;
                if (response.Header.Revision <= lastRevision)
                {
                    Violations.Enqueue($"writer {writer}: {key} got revision {response.Header.Revision} after {lastRevision}");
                }

                if (response.Header.MemberId != member.MemberId)
                {
                    Violations.Enqueue($"writer {writer}: {key} answered by {member.Name} ({member.MemberId:x}) with member id {response.Header.MemberId:x}");
                }

                lastRevision = response.Header.Revision;
                Acked.Enqueue(new AckedWrite(key, value, response.Header.Revision, response.Header.MemberId, response.Header.RaftTerm, member.Name, sent, acked));
            }
            catch (RpcException e) when (!_stop.IsCancellationRequested)
            {
                Failures.Enqueue($"{_clock.Elapsed.TotalMilliseconds:F0} ms writer {writer} via {member.Name}: {e.StatusCode} {e.Status.Detail}");
                FailedCalls.Enqueue(new FailedWrite(key, member.Name, sent, _clock.Elapsed, e.StatusCode, e.Status.Detail));
                at++;
                if (_rotate)
                {
                    // The next target is another member already; a short pause keeps a leaderless moment from spinning.
                    await Task.Delay(20);
                }
            }
            catch (RpcException)
            {
                break;
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        foreach (var channel in channels.Values)
        {
            channel.Dispose();
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

/// <summary>
/// The opening several cluster tests share: a cluster of <c>size</c> members started, one writer
/// going through a list of members (all of them at first, changed with <see cref="AddTarget"/> and
/// <see cref="RemoveTarget"/>), and the first acknowledged writes.
/// </summary>
internal sealed class ClusterUnderLoad : IAsyncDisposable
{
    private readonly List<ArbiterClusterMember> _targets;

    private ClusterUnderLoad(ArbiterCluster cluster, string prefix)
    {
        Cluster = cluster;
        Prefix = prefix;
        _targets = [.. cluster.Running];
        Writer = new Writers(cluster, prefix, targets: () => Targets, rotate: true);
    }

    public ArbiterCluster Cluster { get; }

    public Writers Writer { get; }

    public string Prefix { get; }

    /// <summary><c>var (cluster, writer) = run;</c></summary>
    public void Deconstruct(out ArbiterCluster cluster, out Writers writer) => (cluster, writer) = (Cluster, Writer);

    /// <summary>The members the writer goes through, a copy.</summary>
    public IReadOnlyList<ArbiterClusterMember> Targets
    {
        get
        {
            lock (_targets)
            {
                return [.. _targets];
            }
        }
    }

    /// <summary>Starts the cluster and the writer, and waits for <paramref name="acksFirst"/> acknowledged writes.</summary>
    public static async Task<ClusterUnderLoad> StartAsync(int size, string prefix, int acksFirst, ClusterSettings? settings = null)
    {
        var cluster = await ArbiterCluster.StartAsync(size, settings);
        var loaded = new ClusterUnderLoad(cluster, prefix);
        try
        {
            await loaded.Writer.WaitForAcksAsync(acksFirst, ClusterKit.ConvergeTimeout);
            return loaded;
        }
        catch
        {
            await loaded.DisposeAsync();
            throw;
        }
    }

    public void AddTarget(ArbiterClusterMember member)
    {
        lock (_targets)
        {
            _targets.Add(member);
        }
    }

    public void RemoveTarget(ArbiterClusterMember member)
    {
        lock (_targets)
        {
            _targets.Remove(member);
        }
    }

    /// <summary>Stops the writer, then waits until every running member converged and holds every acknowledged write; returns the revision.</summary>
    public async Task<long> StopAndCheckAsync(ITestOutputHelper output)
    {
        await Writer.StopAsync();
        var (revision, _) = await ClusterKit.WaitConvergedAsync(Cluster);
        await ClusterKit.AssertAllPresentAsync(Cluster, Prefix, Writer.Acked.ToList(), output);
        return revision;
    }

    public async ValueTask DisposeAsync()
    {
        await Writer.DisposeAsync();
        await Cluster.DisposeAsync();
    }
}

/// <summary>
/// Polls every running member's Status and records any revision that goes backwards within one
/// run of a member (a killed member is forgotten until it answers again), and any term decrease.
/// </summary>
internal sealed class RevisionMonitor : BackgroundLoop
{
    private readonly ArbiterCluster _cluster;
    private readonly Dictionary<ArbiterClusterMember, (long Revision, ulong Term)> _last = [];
    private readonly Dictionary<ArbiterClusterMember, (ulong Term, ulong Leader)> _leaders = [];
    private readonly Stopwatch _clock;
    private readonly ITestOutputHelper _output;

    public RevisionMonitor(ArbiterCluster cluster, Stopwatch clock, ITestOutputHelper output)
    {
        _cluster = cluster;
        _clock = clock;
        _output = output;
        Start(PollLoopAsync);
    }

    public ConcurrentQueue<string> Violations { get; } = new();

    /// <summary>The last revision each member had before it was killed, and what it answered first after its restart.</summary>
    public ConcurrentQueue<string> Restarts { get; } = new();

    public int Polls { get; private set; }

    /// <summary>Each (term, leader) a member reported, when it first reported it.</summary>
    public ConcurrentQueue<string> LeaderChanges { get; } = new();

    private readonly Dictionary<ArbiterClusterMember, long> _beforeKill = [];

    private async Task PollLoopAsync()
    {
        while (!Stop.IsCancellationRequested)
        {
            foreach (var member in _cluster.Members.ToList())
            {
                if (!member.IsRunning)
                {
                    if (_last.Remove(member, out var gone))
                    {
                        _beforeKill[member] = gone.Revision;
                    }

                    continue;
                }

                StatusResponse status;
                try
                {
                    using var channel = GrpcChannel.ForAddress(member.Endpoint);
                    status = await new Maintenance.MaintenanceClient(channel).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: Stop.Token);
                }
                catch (RpcException)
                {
                    continue;
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                if (status.Header.MemberId != member.MemberId && member.MemberId != 0)
                {
                    Violations.Enqueue($"{member.Name} answered Status with member id {status.Header.MemberId:x}, expected {member.MemberId:x}");
                }

                if (!_leaders.TryGetValue(member, out var seen) || seen != (status.RaftTerm, status.Leader))
                {
                    _leaders[member] = (status.RaftTerm, status.Leader);
                    var leaderName = _cluster.Members.FirstOrDefault(m => m.MemberId == status.Leader)?.Name ?? (status.Leader == 0 ? "none" : $"{status.Leader:x}");
                    LeaderChanges.Enqueue($"{_clock.Elapsed.TotalMilliseconds:F0} ms {member.Name}: term {status.RaftTerm}, leader {leaderName}");
                }

                var now = (status.Header.Revision, status.RaftTerm);
                if (_last.TryGetValue(member, out var before))
                {
                    if (now.Revision < before.Revision)
                    {
                        Violations.Enqueue($"{member.Name}: revision went from {before.Revision} to {now.Revision}");
                    }

                    if (now.RaftTerm < before.Term)
                    {
                        Violations.Enqueue($"{member.Name}: term went from {before.Term} to {now.RaftTerm}");
                    }
                }
                else if (_beforeKill.Remove(member, out var killedAt))
                {
                    // Its applied state was on disk (the OS keeps what a killed process wrote): a restart replays it before serving.
                    Restarts.Enqueue($"{member.Name}: revision {killedAt} before the kill, {now.Revision} first after restart");
                    if (now.Revision < killedAt)
                    {
                        Violations.Enqueue($"{member.Name}: revision {killedAt} before the kill, {now.Revision} after restart");
                    }
                }

                _last[member] = now;
                Polls++;
            }

            try
            {
                await Task.Delay(20, Stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();

        // Written even when the test failed: the election history explains most failures.
        _output.WriteLine($"revision monitor: {Polls} polls; {string.Join("; ", Restarts)}");
        _output.WriteLine($"terms and leaders seen: {string.Join("; ", LeaderChanges)}");
    }
}

/// <summary>A task that runs until disposal: its stop token, and a disposal that cancels and waits for it.</summary>
internal abstract class BackgroundLoop : IAsyncDisposable
{
    private Task _loop = Task.CompletedTask;

    protected CancellationTokenSource Stop { get; } = new();

    protected void Start(Func<Task> loop) => _loop = Task.Run(loop);

    public virtual async ValueTask DisposeAsync()
    {
        await Stop.CancelAsync();
        await _loop;
        Stop.Dispose();
    }
}
