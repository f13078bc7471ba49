using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>How the members of a test cluster run.</summary>
public sealed record ClusterSettings
{
    /// <summary>
    /// etcd's (and Arbiter's) default timing. Tests used 50/400 ms for quicker failover, but with the
    /// test projects running in parallel on two cores a fresh cluster then changed leader within
    /// its first seconds in most starts (a member busy starting up misses the 200 ms Raft request
    /// timeout), and a write sent then failed with "possibly due to previous leader failure".
    /// </summary>
    public int HeartbeatIntervalMs { get; init; } = 100;

    /// <inheritdoc cref="HeartbeatIntervalMs"/>
    public int ElectionTimeoutMs { get; init; } = 1000;

    /// <summary>Raft entries between snapshots; small values exercise snapshot install.</summary>
    public int SnapshotCount { get; init; } = 20_000;

    /// <summary>
    /// Runs each member under its own uid (via <c>setpriv</c>, needs root) so that iptables
    /// <c>-m owner --uid-owner</c> rules can cut the traffic between members on loopback, where
    /// every connection comes from 127.0.0.1. Off by default.
    /// </summary>
    public bool RunMembersAsSeparateUsers { get; init; }

    /// <summary>
    /// Every member's <c>--log-level</c>: <c>ARBITER_TEST_MEMBER_LOG_LEVEL</c> if set (debug shows
    /// where forwarded and proposed writes wait), else info.
    /// </summary>
    public string LogLevel { get; init; } = Environment.GetEnvironmentVariable("ARBITER_TEST_MEMBER_LOG_LEVEL") ?? "info";

    /// <summary>More <c>arbiter serve</c> flags for every member.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>
    /// Certificates for TLS between members (null: none). Each member then also serves an https
    /// client URL (<see cref="ArbiterClusterMember.TlsEndpoint"/>, which members forward to) beside
    /// its plain one, and runs with https peer URLs, <c>--peer-client-cert-auth</c> and the set's CA.
    /// </summary>
    public Arbiter.Node.Security.TlsFileSet? PeerTls { get; init; }

    /// <summary>A different certificate set for the member with this name (e.g. one from another CA), or null for <see cref="PeerTls"/>.</summary>
    public Func<string, Arbiter.Node.Security.TlsFileSet?>? MemberPeerTls { get; init; }

    /// <summary>More environment variables for the member with this name (e.g. libfaketime's to skew its clock), or null.</summary>
    public Func<string, IReadOnlyDictionary<string, string>?>? MemberEnvironment { get; init; }
}

/// <summary>One member of an <see cref="ArbiterCluster"/>: a real <c>arbiter serve</c> process with its own ports and data dir.</summary>
public sealed class ArbiterClusterMember : ServerProcess
{
    private const UnixFileMode AnyoneMayWrite =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private readonly ArbiterCluster _cluster;

    public ArbiterClusterMember(string name, ArbiterCluster cluster, int? uid = null)
        : base(name)
    {
        _cluster = cluster;
        Uid = uid;
        if (uid is not null && !OperatingSystem.IsWindows())
        {
            // The member (another uid) creates its files in the dir; root (the test) can still delete them.
            File.SetUnixFileMode(DataDir, AnyoneMayWrite);
        }
    }

    /// <summary>The https client URL members forward to, with <see cref="ClusterSettings.PeerTls"/> (its port is allocated either way).</summary>
    public string TlsEndpoint => $"https://127.0.0.1:{TlsPort}";

    public int TlsPort { get; } = PortAllocator.FreePort();

    /// <summary>The peer URL as given to the cluster: https with <see cref="ClusterSettings.PeerTls"/>.</summary>
    public string MemberPeerUrl => _cluster.Settings.PeerTls is null ? PeerUrl : "https://" + PeerUrl["http://".Length..];

    /// <summary>The uid the process runs as (<see cref="ClusterSettings.RunMembersAsSeparateUsers"/>), or null for the test's own user.</summary>
    public int? Uid { get; }

    /// <summary><c>new</c> for founders; <c>existing</c> for members added later (and for a wiped member rejoining).</summary>
    public string InitialClusterState { get; set; } = "new";

    /// <summary>The member id the cluster reports for this member (from Status; 0 before the first start).</summary>
    public ulong MemberId { get; internal set; }

    protected override string FileName => Uid is null ? "dotnet" : "setpriv";

    protected override IReadOnlyDictionary<string, string>? Environment
    {
        get
        {
            var environment = new Dictionary<string, string>(StringComparer.Ordinal);
            if (Uid is not null)
            {
                environment["HOME"] = DataDir;
                environment["DOTNET_CLI_HOME"] = DataDir;
            }

            foreach (var (name, value) in _cluster.Settings.MemberEnvironment?.Invoke(Name) ?? new Dictionary<string, string>())
            {
                environment[name] = value;
            }

            return environment.Count == 0 ? null : environment;
        }
    }

    protected override IEnumerable<string> Arguments(bool isRestart) => Uid is { } uid
        ? [$"--reuid={uid}", $"--regid={uid}", "--clear-groups", "dotnet", .. ServeArguments()]
        : ServeArguments();

    private IEnumerable<string> TlsArguments()
    {
        if (_cluster.Settings.PeerTls is not { } trusted)
        {
            return ["--listen-client-urls", Endpoint, "--advertise-client-urls", Endpoint];
        }

        var own = _cluster.Settings.MemberPeerTls?.Invoke(Name) ?? trusted;
        return
        [
            "--listen-client-urls", $"{Endpoint},{TlsEndpoint}", "--advertise-client-urls", $"{Endpoint},{TlsEndpoint}",
            "--cert-file", own.ServerCertFile, "--key-file", own.ServerKeyFile, "--trusted-ca-file", own.CaFile,
            "--peer-cert-file", own.PeerCertFile, "--peer-key-file", own.PeerKeyFile, "--peer-trusted-ca-file", own.CaFile, "--peer-client-cert-auth",
        ];
    }

    private IEnumerable<string> ServeArguments() =>
    [
        ArbiterProcess.DllPath,
        "serve",
        "--name", Name,
        "--data-dir", DataDir,
        .. TlsArguments(),
        "--initial-advertise-peer-urls", MemberPeerUrl,
        "--listen-peer-urls", MemberPeerUrl,
        "--initial-cluster", _cluster.InitialClusterFor(this),
        "--initial-cluster-state", InitialClusterState,
        "--heartbeat-interval", _cluster.Settings.HeartbeatIntervalMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--election-timeout", _cluster.Settings.ElectionTimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--snapshot-count", _cluster.Settings.SnapshotCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "--log-level", _cluster.Settings.LogLevel,
        .. _cluster.Settings.ExtraArguments,
        .. OwnArguments,
    ];

    /// <summary>More <c>arbiter serve</c> flags for this member alone, read at each start (a test may change them before a restart).</summary>
    public IReadOnlyList<string> OwnArguments { get; set; } = [];

    /// <summary>Deletes everything in the data dir (the member must be stopped): a machine that lost its disk.</summary>
    public void WipeData()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"{Name} is running; stop it before wiping its data");
        }

        foreach (var entry in new DirectoryInfo(DataDir).EnumerateFileSystemInfos())
        {
            if (entry is DirectoryInfo directory)
            {
                directory.Delete(recursive: true);
            }
            else
            {
                entry.Delete();
            }
        }
    }

    public GrpcChannel OpenChannel() => GrpcChannel.ForAddress(Endpoint, ServerFixture.ChannelOptions);
}

/// <summary>
/// A Raft cluster of real Arbiter processes on loopback. Founders start together with
/// <c>--initial-cluster-state new</c>; <see cref="AddMemberAsync"/> grows it the etcd way
/// (MemberAdd on the cluster, then start the new member with <c>existing</c>).
/// </summary>
public sealed class ArbiterCluster : IAsyncDisposable
{
    private readonly List<ArbiterClusterMember> _members = [];
    private readonly List<ArbiterClusterMember> _founders = [];
    private readonly HashSet<ArbiterClusterMember> _removed = [];
    private int _nameCounter;

    /// <summary>First uid of this cluster's members when they run as separate users: random, so that two clusters do not share uids.</summary>
    private readonly int _uidBase;

    private ArbiterCluster(ClusterSettings settings)
    {
        Settings = settings;
        _uidBase = 40_000 + (Random.Shared.Next(2_000) * 10);
    }

    public ClusterSettings Settings { get; }

    /// <summary>Every member ever started (including removed ones, until disposal).</summary>
    public IReadOnlyList<ArbiterClusterMember> Members => _members;

    public IEnumerable<ArbiterClusterMember> Running => _members.Where(m => m.IsRunning);

    /// <summary>Server output of every member, for failure messages.</summary>
    public string Logs => string.Join("\n", _members.Select(m => $"===== {m.Name} =====\n{m.Log}"));

    /// <summary>
    /// Starts <paramref name="size"/> founding members and waits until they agree on a leader;
    /// <paramref name="beforeStart"/> may first prepare each member's (empty) data dir, e.g. restore a backup into it.
    /// </summary>
    /// <param name="size">Founding members.</param>
    /// <param name="settings">How they run.</param>
    /// <param name="beforeStart">Prepares a member's data dir first, or null.</param>
    /// <param name="waitForLeader">False: return once every member answers, without waiting for them to agree on a leader (a member meant to be refused never would).</param>
    public static async Task<ArbiterCluster> StartAsync(int size, ClusterSettings? settings = null, Func<ArbiterCluster, ArbiterClusterMember, Task>? beforeStart = null, bool waitForLeader = true)
    {
        var cluster = new ArbiterCluster(settings ?? new ClusterSettings());
        try
        {
            for (var i = 0; i < size; i++)
            {
                var member = cluster.NewMember();
                cluster._founders.Add(member);
            }

            foreach (var member in cluster._founders)
            {
                await (beforeStart?.Invoke(cluster, member) ?? Task.CompletedTask).ConfigureAwait(false);
            }

            // Start all at once: each waits only until its own client port answers.
            await Task.WhenAll(cluster._founders.Select(m => m.StartAsync())).ConfigureAwait(false);
            if (waitForLeader)
            {
                await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private ArbiterClusterMember NewMember()
    {
        var index = ++_nameCounter;
        var member = new ArbiterClusterMember($"m{index}", this, Settings.RunMembersAsSeparateUsers ? _uidBase + index : null);
        _members.Add(member);
        return member;
    }

    /// <summary>The <c>--initial-cluster</c> value <paramref name="member"/> is started with.</summary>
    public string InitialClusterFor(ArbiterClusterMember member)
    {
        var listed = member.InitialClusterState == "new" ? _founders : _members.Where(m => (m.IsRunning && !_removed.Contains(m)) || m == member);
        return string.Join(",", listed.Select(m => $"{m.Name}={m.MemberPeerUrl}"));
    }

    /// <summary>
    /// Waits until every running member reports the same leader (a running member) and returns it.
    /// </summary>
    public async Task<ArbiterClusterMember> WaitForLeaderAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string last = "no answer yet";
        while (DateTime.UtcNow < deadline)
        {
            var statuses = new List<(ArbiterClusterMember Member, StatusResponse? Status)>();
            foreach (var member in Running.ToList())
            {
                statuses.Add((member, await TryStatusAsync(member).ConfigureAwait(false)));
            }

            foreach (var (member, status) in statuses)
            {
                if (status is not null)
                {
                    member.MemberId = status.Header.MemberId;
                }
            }

            var leaders = statuses.Select(s => s.Status?.Leader ?? 0).Distinct().ToList();
            if (leaders is [var leaderId] && leaderId != 0 && statuses.FirstOrDefault(s => s.Member.MemberId == leaderId).Member is { } leader)
            {
                return leader;
            }

            last = string.Join(", ", statuses.Select(s => $"{s.Member.Name}→{s.Status?.Leader ?? 0:x}"));
            await Task.Delay(50).ConfigureAwait(false);
        }

        throw new TimeoutException($"no agreed leader within {timeout}: {last}\n{Logs}");
    }

    /// <summary>A running member that is not the leader.</summary>
    public async Task<ArbiterClusterMember> FollowerAsync()
    {
        var leader = await WaitForLeaderAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return Running.First(m => m != leader);
    }

    public static async Task<StatusResponse?> TryStatusAsync(ArbiterClusterMember member)
    {
        try
        {
            using var channel = GrpcChannel.ForAddress(member.Endpoint);
            return await new Maintenance.MaintenanceClient(channel)
                .StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2)).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>A new member (own ports and data dir) set to join with <c>existing</c>; not added to the cluster nor started.</summary>
    public ArbiterClusterMember NewJoiner()
    {
        var member = NewMember();
        member.InitialClusterState = "existing";
        return member;
    }

    /// <summary>Grows the cluster the etcd way: MemberAdd through <paramref name="via"/>, then start the new member with <c>existing</c>.</summary>
    public async Task<ArbiterClusterMember> AddMemberAsync(ArbiterClusterMember via)
    {
        var member = NewJoiner();
        using (var channel = via.OpenChannel())
        {
            var request = new MemberAddRequest();
            request.PeerURLs.Add(member.MemberPeerUrl);
            var added = await new Protocol.Etcd.Cluster.ClusterClient(channel).MemberAddAsync(request, deadline: DateTime.UtcNow.AddSeconds(30)).ConfigureAwait(false);
            member.MemberId = added.Member.ID;
        }

        await member.StartAsync().ConfigureAwait(false);
        return member;
    }

    /// <summary>How long a removed member may take to notice and exit by itself (generous: the machine is small and shared).</summary>
    public static readonly TimeSpan RemovedExitTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// MemberRemove through <paramref name="via"/>, then waits for the removed member's process to exit
    /// by itself, as etcd's does (fails if it does not within <see cref="RemovedExitTimeout"/>, or exits
    /// with a code other than 0); a member that was not running is left as it is.
    /// </summary>
    public async Task RemoveMemberAsync(ArbiterClusterMember via, ArbiterClusterMember removed)
    {
        using (var channel = via.OpenChannel())
        {
            try
            {
                await new Protocol.Etcd.Cluster.ClusterClient(channel)
                    .MemberRemoveAsync(new MemberRemoveRequest { ID = removed.MemberId }, deadline: DateTime.UtcNow.AddSeconds(30)).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                // The server side of an unexpected failure is only in the members' logs.
                throw new InvalidOperationException($"MemberRemove of {removed.Name} via {via.Name} failed: {e.Status}\n{Logs[^Math.Min(Logs.Length, 20_000)..]}", e);
            }
        }

        _removed.Add(removed);
        if (!removed.IsRunning)
        {
            return;
        }

        var exitCode = await removed.WaitForExitAsync(RemovedExitTimeout).ConfigureAwait(false);
        if (exitCode != 0)
        {
            var state = exitCode is null ? $"still running after {RemovedExitTimeout}" : $"exited with code {exitCode}";
            await removed.KillAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"removed member {removed.Name} {state}, want a clean exit (0)\n{Logs}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_members.Select(m => m.DisposeAsync().AsTask())).ConfigureAwait(false);
    }
}
