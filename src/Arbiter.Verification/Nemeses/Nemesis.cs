using System.Globalization;
using Arbiter.Verification.Cluster;
using Arbiter.Verification.History;
using Arbiter.Verification.Workloads;

namespace Arbiter.Verification.Nemeses;

/// <summary>The faults the harness injects.</summary>
public enum NemesisKind
{
    /// <summary>No faults.</summary>
    None,

    /// <summary>Client side: abort the calls in flight (their outcome becomes unknown). Works against given endpoints.</summary>
    ClientFaults,

    /// <summary>SIGKILL a random member, restart it later.</summary>
    Kill,

    /// <summary>SIGKILL the leader, restart it later.</summary>
    KillLeader,

    /// <summary>SIGSTOP a random member, SIGCONT later.</summary>
    Pause,

    /// <summary>SIGSTOP the leader for longer than the lock workload's lease TTL, SIGCONT later.</summary>
    PauseLeader,

    /// <summary>Cut one random member off from the others.</summary>
    PartitionOne,

    /// <summary>Split into a random majority and minority.</summary>
    PartitionMajority,

    /// <summary>Overlapping majorities: each member sees a majority, no two the same (for 3 members the same as a bridge).</summary>
    PartitionRing,

    /// <summary>Two halves that only one member (the bridge) sees both of.</summary>
    PartitionBridge,

    /// <summary>Remove a random follower, wipe it, add it back as a new member (one server at a time), under load.</summary>
    Membership,

    /// <summary>
    /// Move the wall clock of a random subset of members by ±0.1 s to ±1,000 s (libfaketime; the
    /// monotonic clock is left alone), reset at the heal. Arbiter members only.
    /// </summary>
    ClockSkew,
}

/// <summary>
/// Runs one kind of fault on a seeded schedule: quiet 2–4 s, fault, hold 2–5 s (a leader pause holds
/// past the lease TTL), heal; and a final heal (restart, resume, remove partitions) whatever happens.
/// The seed fixes the schedule (timings, which member by position); "the leader" is whoever leads then.
/// </summary>
public sealed class Nemesis
{
    private readonly NemesisKind _kind;
    private readonly ITargetCluster _cluster;
    private readonly HistoryRecorder _recorder;
    private readonly ClientFaults _clientFaults;
    private readonly Random _random;
    private readonly int _leaseTtlSeconds;
    private readonly IptablesPartitioner _partitioner = new();
    private readonly List<MemberProcess> _killed = [];
    private readonly List<MemberProcess> _paused = [];

    /// <summary>A nemesis of <paramref name="kind"/> over <paramref name="cluster"/>, scheduled from <paramref name="seed"/>.</summary>
    public Nemesis(NemesisKind kind, ITargetCluster cluster, HistoryRecorder recorder, ClientFaults clientFaults, int seed, int leaseTtlSeconds)
    {
        if (kind is not (NemesisKind.None or NemesisKind.ClientFaults) && cluster is not HarnessCluster)
        {
            throw new ArgumentException($"{Names.Of(kind)} needs a cluster the harness started; against given endpoints only none and client-faults apply", nameof(kind));
        }

        if (kind is NemesisKind.PartitionOne or NemesisKind.PartitionMajority or NemesisKind.PartitionRing or NemesisKind.PartitionBridge
            && (cluster is not HarnessCluster { Options.SeparateUsers: true } || IptablesPartitioner.UnavailableReason() is not null))
        {
            throw new ArgumentException($"partitions need members under separate uids and working iptables: {IptablesPartitioner.UnavailableReason() ?? "start the cluster with separate users"}", nameof(kind));
        }

        if (kind == NemesisKind.ClockSkew && cluster is not HarnessCluster { Options.ClockSkew: true })
        {
            throw new ArgumentException($"clock-skew needs an arbiter cluster the harness started with libfaketime (HarnessClusterOptions.ClockSkew): {FakeTime.UnavailableReason() ?? "start the cluster with clock skew enabled"}", nameof(kind));
        }

        _kind = kind;
        _cluster = cluster;
        _recorder = recorder;
        _clientFaults = clientFaults;
        _random = new Random(unchecked((seed * 0x5EED) + 17));
        _leaseTtlSeconds = leaseTtlSeconds;
    }

    /// <summary>
    /// Whether <paramref name="kind"/> can be injected into a cluster of <paramref name="server"/>:
    /// clock skew cannot reach etcd (a Go program reads the clock through the vDSO, not libc, so
    /// libfaketime has no effect on it).
    /// </summary>
    public static bool AppliesTo(NemesisKind kind, ServerKind server) => kind != NemesisKind.ClockSkew || server == ServerKind.Arbiter;

    /// <summary>Clock skews injected and then read back from the member: (member, offset set, offset the member reported, seconds).</summary>
    public IReadOnlyList<(string Member, double SetSeconds, double? ObservedSeconds)> ClockSkews => _clockSkews;

    private readonly List<(string Member, double SetSeconds, double? ObservedSeconds)> _clockSkews = [];

    /// <summary>Faults injected so far.</summary>
    public int Injected { get; private set; }

    /// <summary>Runs the schedule until <paramref name="stop"/>, then heals.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        if (_kind == NemesisKind.None)
        {
            return;
        }

        try
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(_random.Next(2_000, 4_000), stop).ConfigureAwait(false);
                var holdMs = _kind == NemesisKind.PauseLeader ? (_leaseTtlSeconds * 1_000) + _random.Next(500, 1_500) : _random.Next(2_000, 5_000);
                if (await InjectAsync(stop).ConfigureAwait(false))
                {
                    Injected++;
                }

                await Task.Delay(holdMs, stop).ConfigureAwait(false);
                await HealAsync().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Time is up.
        }
        finally
        {
            await HealAsync().ConfigureAwait(false);
            _recorder.Note("nemesis", "final heal");
        }
    }

    private HarnessCluster Harness => (HarnessCluster)_cluster;

    private async Task<bool> InjectAsync(CancellationToken stop)
    {
        switch (_kind)
        {
            case NemesisKind.ClientFaults:
                _clientFaults.AbortInFlight();
                _recorder.Note("nemesis", "client-side: aborted the calls in flight");
                break;
            case NemesisKind.Kill or NemesisKind.KillLeader:
                {
                    var target = await TargetAsync(_kind == NemesisKind.KillLeader).ConfigureAwait(false);
                    await target.KillAsync().ConfigureAwait(false);
                    _killed.Add(target);
                    _recorder.Note("nemesis", $"kill -9 {target.CurrentName}");
                    break;
                }

            case NemesisKind.Pause or NemesisKind.PauseLeader:
                {
                    var target = await TargetAsync(_kind == NemesisKind.PauseLeader).ConfigureAwait(false);
                    target.Pause();
                    _paused.Add(target);
                    _recorder.Note("nemesis", $"SIGSTOP {target.CurrentName}");
                    break;
                }

            case NemesisKind.Membership:
                {
                    var leader = await Harness.LeaderAsync().ConfigureAwait(false);
                    var followers = Harness.Members.Where(m => m != leader && m.IsRunning).ToList();
                    var target = followers[_random.Next(followers.Count)];
                    _recorder.Note("nemesis", $"replace {target.CurrentName}: remove, wipe, add back");
                    try
                    {
                        await Harness.ReplaceMemberAsync(target, stop).ConfigureAwait(false);
                        _recorder.Note("nemesis", $"{target.CurrentName} added back and started");
                    }
                    catch (Grpc.Core.RpcException e)
                    {
                        _recorder.Note("nemesis", $"membership change failed: {e.StatusCode} {e.Status.Detail}");
                        if (!target.IsRunning)
                        {
                            _killed.Add(target);
                        }

                        return false;
                    }

                    break;
                }

            case NemesisKind.ClockSkew:
                await SkewClocksAsync(stop).ConfigureAwait(false);
                break;

            default:
                Partition();
                break;
        }

        return true;
    }

    /// <summary>How long the clock-skew nemesis keeps reading a member's clock back until it shows the offset.</summary>
    private const int ClockReadBackSecondsMax = 6;

    private async Task SkewClocksAsync(CancellationToken stop)
    {
        var members = Harness.Members.Where(m => m.IsRunning && m.ClockOffsetFile is not null).ToList();
        var chosen = members.Where(_ => _random.Next(2) == 0).ToList();
        if (chosen.Count == 0)
        {
            chosen.Add(members[_random.Next(members.Count)]);
        }

        foreach (var member in chosen)
        {
            // Log-uniform magnitude from 0.1 s to 1,000 s, either direction.
            var offsetSeconds = Math.Round(Math.Pow(10, (_random.NextDouble() * 4) - 1) * (_random.Next(2) == 0 ? -1 : 1), 3);
            member.SetClockOffset(offsetSeconds);
            _recorder.Note("nemesis", ClockSetNote(member.CurrentName, offsetSeconds));
        }

        // Read the clocks back, so that the history shows the skew was real. libfaketime re-reads its
        // file about once a second and Kestrel refreshes its date header once a second, so poll.
        foreach (var member in chosen)
        {
            double? observed = null;
            var deadline = DateTime.UtcNow.AddSeconds(ClockReadBackSecondsMax);
            while (!stop.IsCancellationRequested)
            {
                var before = DateTimeOffset.UtcNow;
                var reported = await HarnessCluster.WallClockAsync(member.Endpoint, TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                var after = DateTimeOffset.UtcNow;
                observed = reported is { } at ? Math.Round((at - (before + ((after - before) / 2))).TotalSeconds, 1) : null;
                if ((observed is { } o && Math.Abs(o - member.ClockOffsetSeconds) <= 2.5) || DateTime.UtcNow > deadline)
                {
                    break;
                }

                await Task.Delay(250, stop).ConfigureAwait(false);
            }

            _clockSkews.Add((member.CurrentName, member.ClockOffsetSeconds, observed));
            _recorder.Note("nemesis", ClockReportNote(member.CurrentName, observed));
        }
    }

    /// <summary>The history note for a clock offset the nemesis set.</summary>
    internal static string ClockSetNote(string member, double offsetSeconds) =>
        string.Create(CultureInfo.InvariantCulture, $"clock of {member} set {offsetSeconds:+0.000;-0.000;+0.000} s off");

    /// <summary>The history note for the offset a member's wall clock was read back at, if it answered.</summary>
    internal static string ClockReportNote(string member, double? observedSeconds) =>
        observedSeconds is { } seen
            // The third section matters: a negative offset that rounds to zero (or -0.0) would print "-+0.0"
            // with two sections, and a reader of the history could not parse it.
            ? string.Create(CultureInfo.InvariantCulture, $"{member} reports a wall clock {seen:+0.0;-0.0;+0.0} s off the harness's (date header, 1 s resolution)")
            : $"{member} did not report its wall clock";

    private async Task<MemberProcess> TargetAsync(bool leader)
    {
        var candidates = Harness.Members.Where(m => m.IsRunning && !m.IsPaused).ToList();
        var pick = candidates[_random.Next(candidates.Count)];
        return leader ? await Harness.LeaderAsync().ConfigureAwait(false) ?? pick : pick;
    }

    private void Partition()
    {
        var members = Harness.Members.OrderBy(_ => _random.Next()).ToList();
        var (pairs, description) = Cuts(_kind, members, m => m.CurrentName);
        _partitioner.Cut(pairs);
        _recorder.Note("nemesis", description);
    }

    /// <summary>
    /// The pairs of members a partition of <paramref name="kind"/> cuts apart, for members in the
    /// (already shuffled) order given, and a description. A ring needs at least 5 members: each member
    /// then keeps its two ring neighbours (with itself, a majority of 3 out of 5), and no two members
    /// see the same majority. With fewer members a ring is a bridge.
    /// </summary>
    internal static (List<(T, T)> Pairs, string Description) Cuts<T>(NemesisKind kind, IReadOnlyList<T> members, Func<T, string> name)
    {
        var n = members.Count;
        var pairs = new List<(T, T)>();
        string description;
        switch (kind)
        {
            case NemesisKind.PartitionOne:
                pairs.AddRange(members.Skip(1).Select(m => (members[0], m)));
                description = $"isolate {name(members[0])}";
                break;
            case NemesisKind.PartitionMajority:
                {
                    var minority = members.Take(n / 2).ToList();
                    var majority = members.Skip(n / 2).ToList();
                    pairs.AddRange(minority.SelectMany(a => majority.Select(b => (a, b))));
                    description = $"split {Join(minority)} | {Join(majority)}";
                    break;
                }

            case NemesisKind.PartitionRing when n >= 5:
                for (var i = 0; i < n; i++)
                {
                    for (var j = i + 1; j < n; j++)
                    {
                        var distance = Math.Min(j - i, n - (j - i));
                        if (distance > 1)
                        {
                            pairs.Add((members[i], members[j]));
                        }
                    }
                }

                description = $"ring {Join(members)} (each sees only its two neighbours)";
                break;
            case NemesisKind.PartitionRing or NemesisKind.PartitionBridge:
                {
                    // Bridge (and the ring of 3): the middle member sees both halves, the halves not each other.
                    var bridge = members[n / 2];
                    var left = members.Take(n / 2).ToList();
                    var right = members.Skip((n / 2) + 1).ToList();
                    pairs.AddRange(left.SelectMany(a => right.Select(b => (a, b))));
                    description = $"bridge {Join(left)} | {name(bridge)} | {Join(right)}";
                    break;
                }

            default:
                throw new ArgumentException($"{Nemesis.Names.Of(kind)} is not a partition", nameof(kind));
        }

        return (pairs, description);

        string Join(IEnumerable<T> ms) => string.Join(",", ms.Select(name));
    }

    private async Task HealAsync()
    {
        if (_partitioner.IsActive)
        {
            _partitioner.HealAll();
            _recorder.Note("nemesis", "partition healed");
        }

        foreach (var member in _paused)
        {
            member.Resume();
            _recorder.Note("nemesis", $"SIGCONT {member.CurrentName}");
        }

        _paused.Clear();
        foreach (var member in _killed)
        {
            member.Start();
            _recorder.Note("nemesis", $"restart {member.CurrentName}");
        }

        _killed.Clear();
        if (_kind == NemesisKind.ClockSkew)
        {
            var skewed = Harness.Members.Where(m => m.ClockOffsetSeconds != 0).ToList();
            foreach (var member in skewed)
            {
                member.SetClockOffset(0);
            }

            if (skewed.Count > 0)
            {
                _recorder.Note("nemesis", $"clocks of {string.Join(",", skewed.Select(m => m.CurrentName))} reset");
            }
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <summary>Command-line names of the nemeses.</summary>
    public static class Names
    {
        /// <summary>All of them, as written on the command line.</summary>
        public static IReadOnlyList<string> All => [.. Enum.GetValues<NemesisKind>().Select(Of)];

        /// <summary><c>PartitionOne</c> → <c>partition-one</c>.</summary>
        public static string Of(NemesisKind kind) =>
            string.Concat(kind.ToString().Select((c, i) => char.IsUpper(c) && i > 0 ? $"-{char.ToLowerInvariant(c)}" : $"{char.ToLowerInvariant(c)}"));

        /// <summary>The reverse of <see cref="Of"/>.</summary>
        public static NemesisKind Parse(string name) =>
            Enum.GetValues<NemesisKind>().FirstOrDefault(k => Of(k) == name, (NemesisKind)(-1)) is var kind && Enum.IsDefined(kind)
                ? kind
                : throw new ArgumentException($"no nemesis {name}; known: {string.Join(", ", All)}", nameof(name));
    }
}
