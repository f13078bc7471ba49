using System.Net;
using System.Net.Sockets;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Verification.Cluster;

/// <summary>How the harness starts a cluster.</summary>
public sealed record HarnessClusterOptions
{
    /// <summary>Arbiter or etcd.</summary>
    public ServerKind Kind { get; init; } = ServerKind.Arbiter;

    /// <summary>Members (3 or 5).</summary>
    public int Members { get; init; } = 3;

    /// <summary>
    /// The third octet of the members' addresses (127.0.X.11, .12, …); 0 picks a free one at random so
    /// that concurrent runs on one machine do not collide.
    /// </summary>
    public int AddressBlock { get; init; }

    /// <summary>Run each member under its own uid (needs root and setpriv); required for partitions.</summary>
    public bool SeparateUsers { get; init; }

    /// <summary>Leader heartbeat, ms.</summary>
    public int HeartbeatIntervalMs { get; init; } = 100;

    /// <summary>Election timeout, ms.</summary>
    public int ElectionTimeoutMs { get; init; } = 1000;

    /// <summary>How to run <c>arbiter</c> (file and leading arguments before <c>serve</c>); the current executable if null.</summary>
    public (string File, string[] Prefix)? ArbiterCommand { get; init; }

    /// <summary>
    /// Start each member with libfaketime preloaded (Arbiter only; see <see cref="Nemeses.FakeTime"/>) so
    /// that its wall clock can be skewed with <see cref="MemberProcess.SetClockOffset"/>.
    /// </summary>
    public bool ClockSkew { get; init; }

    /// <summary>Arbiter members' <c>--log-level</c> (the last 400 lines of each are kept and written next to the history).</summary>
    public string MemberLogLevel { get; init; } = System.Environment.GetEnvironmentVariable("ARBITER_VERIFY_MEMBER_LOG_LEVEL") is { Length: > 0 } level ? level : "warn";

    /// <summary>Where data directories go; a fresh temporary directory if null.</summary>
    public string? WorkDirectory { get; init; }
}

/// <summary>
/// A cluster of real server processes started by the harness, each member on its own loopback
/// address. Disposing kills every member and deletes the data.
/// </summary>
public sealed class HarnessCluster : ITargetCluster
{
    /// <summary>Every member uses etcd's default ports, each on its own address.</summary>
    public const int ClientPort = 2379;

    /// <summary>Peer port.</summary>
    public const int PeerPort = 2380;

    private readonly List<MemberProcess> _members = [];
    private int _generation;

    private HarnessCluster(HarnessClusterOptions options, int block)
    {
        if (options.ClockSkew && (options.Kind != ServerKind.Arbiter || Nemeses.FakeTime.UnavailableReason() is not null))
        {
            throw new ArgumentException(
                options.Kind != ServerKind.Arbiter
                    ? "clock skew works on arbiter members only: etcd is a Go program, whose clock reads go straight to the vDSO and bypass libfaketime"
                    : Nemeses.FakeTime.UnavailableReason(),
                nameof(options));
        }

        Options = options;
        Kind = options.Kind;
        Block = block;
        Token = $"verify-{block}-{Guid.NewGuid():N}"[..24];
        WorkDirectory = options.WorkDirectory ?? Path.Combine(Path.GetTempPath(), $"arbiter-verify-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(WorkDirectory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(WorkDirectory, (UnixFileMode)0x1FF);
        }
        ServerCommand = options.ArbiterCommand ?? CurrentArbiter();
        var uidBase = 50_000 + (Random.Shared.Next(1_000) * 10);
        for (var i = 0; i < options.Members; i++)
        {
            _members.Add(new MemberProcess(this, $"n{i + 1}", $"127.0.{block}.{11 + i}", options.SeparateUsers ? uidBase + i : null));
        }
    }

    /// <summary>The options it was started with.</summary>
    public HarnessClusterOptions Options { get; }

    /// <summary>Arbiter or etcd.</summary>
    public ServerKind Kind { get; }

    /// <summary>The third octet of the members' addresses.</summary>
    public int Block { get; }

    /// <summary>The cluster token.</summary>
    public string Token { get; }

    /// <summary>Where the data directories are.</summary>
    public string WorkDirectory { get; }

    internal (string File, string[] Prefix) ServerCommand { get; }

    /// <summary>The members, in a fixed order.</summary>
    public IReadOnlyList<MemberProcess> Members => _members;

    /// <inheritdoc/>
    public IReadOnlyList<string> Endpoints => [.. _members.Select(m => m.Endpoint)];

    /// <inheritdoc/>
    public bool CanInjectProcessFaults => true;

    /// <summary>Starts the members and waits until they agree on a leader.</summary>
    public static async Task<HarnessCluster> StartAsync(HarnessClusterOptions options, CancellationToken cancellationToken = default)
    {
        var block = options.AddressBlock != 0 ? options.AddressBlock : FreeBlock(options.Members);
        var cluster = new HarnessCluster(options, block);
        try
        {
            foreach (var member in cluster._members)
            {
                member.Start();
            }

            await cluster.WaitHealthyAsync(TimeSpan.FromSeconds(90), cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A block 127.0.X.0 whose member addresses have the client and peer ports free.</summary>
    private static int FreeBlock(int members)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var block = Random.Shared.Next(2, 255);
            var free = Enumerable.Range(0, members).All(i => PortFree($"127.0.{block}.{11 + i}", ClientPort) && PortFree($"127.0.{block}.{11 + i}", PeerPort));
            if (free)
            {
                return block;
            }
        }

        throw new InvalidOperationException("no free 127.0.X.0 block for the members' addresses");
    }

    private static bool PortFree(string address, int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Parse(address), port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static (string, string[]) CurrentArbiter()
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        return Path.GetFileNameWithoutExtension(path) == "dotnet" && entry is { Length: > 0 } ? (path, [entry]) : (path, []);
    }

    internal string InitialClusterFor(MemberProcess member)
    {
        var listed = member.InitialClusterState == "new" ? _members.Where(m => m.InitialClusterState == "new" || m == member) : _members.Where(m => !_removed.Contains(m) || m == member);
        return string.Join(",", listed.Select(m => $"{m.CurrentName}={m.PeerUrl}"));
    }

    private readonly HashSet<MemberProcess> _removed = [];

    /// <summary>Waits until every running, unpaused member answers Status and all name the same leader; returns it.</summary>
    public async Task<MemberProcess> WaitHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var last = "nothing yet";
        while (true)
        {
            var up = _members.Where(m => m.IsRunning && !m.IsPaused && !_removed.Contains(m)).ToList();
            var leaders = new List<ulong>();
            var ids = new Dictionary<ulong, MemberProcess>();
            foreach (var member in up)
            {
                var status = await StatusAsync(member.Endpoint, TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                leaders.Add(status?.Leader ?? 0);
                if (status is not null)
                {
                    ids[status.Header.MemberId] = member;
                }
            }

            if (up.Count > 0 && leaders.Distinct().Count() == 1 && leaders[0] != 0 && ids.TryGetValue(leaders[0], out var leader))
            {
                return leader;
            }

            last = string.Join(", ", up.Select((m, i) => $"{m.CurrentName}→{leaders[i]:x}"));
            if (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"no agreed leader within {timeout}: {last}\n{string.Concat(_members.Select(m => m.Tail(15)))}");
            }

            try
            {
                await Task.Delay(100, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // One last look, then the timeout above.
            }
        }
    }

    /// <summary>The member the running members currently name as leader, or null if they do not agree (within 5 s).</summary>
    public async Task<MemberProcess?> LeaderAsync()
    {
        try
        {
            return await WaitHealthyAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes <paramref name="member"/> from the cluster (MemberRemove through another member), wipes
    /// it, adds it back as a new member (MemberAdd) and starts it with <c>existing</c>: membership
    /// change one server at a time, under load.
    /// </summary>
    public async Task ReplaceMemberAsync(MemberProcess member, CancellationToken cancellationToken)
    {
        var via = _members.First(m => m != member && m.IsRunning && !m.IsPaused);
        using var channel = GrpcChannel.ForAddress(via.Endpoint);
        var client = new Protocol.Etcd.Cluster.ClusterClient(channel);
        var list = await client.MemberListAsync(new MemberListRequest(), deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken).ConfigureAwait(false);
        var id = list.Members.First(m => m.PeerURLs.Contains(member.PeerUrl)).ID;
        await client.MemberRemoveAsync(new MemberRemoveRequest { ID = id }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: cancellationToken).ConfigureAwait(false);
        _removed.Add(member);
        await member.WipeAsync($"{member.Name}g{++_generation}").ConfigureAwait(false);
        var add = new MemberAddRequest();
        add.PeerURLs.Add(member.PeerUrl);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await client.MemberAddAsync(add, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (RpcException) when (attempt < 20)
            {
                // Removed but not yet added: the cluster may still be settling the removal; keep trying.
                await Task.Delay(1_000, cancellationToken).ConfigureAwait(false);
            }
        }

        _removed.Remove(member);
        member.InitialClusterState = "existing";
        member.Start();
    }

    /// <summary>Status of one member, or null if it does not answer within <paramref name="timeout"/>.</summary>
    public static async Task<StatusResponse?> StatusAsync(string endpoint, TimeSpan timeout)
    {
        try
        {
            using var channel = GrpcChannel.ForAddress(endpoint);
            return await new Maintenance.MaintenanceClient(channel).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.Add(timeout)).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>
    /// A member's wall clock as it reports it: the <c>date</c> header of a Status response (Kestrel
    /// stamps it from <c>DateTime.UtcNow</c>, to the second), or null if it does not answer in time.
    /// </summary>
    public static async Task<DateTimeOffset?> WallClockAsync(string endpoint, TimeSpan timeout)
    {
        try
        {
            using var channel = GrpcChannel.ForAddress(endpoint);
            using var call = new Maintenance.MaintenanceClient(channel).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.Add(timeout));
            var headers = await call.ResponseHeadersAsync.ConfigureAwait(false);
            await call.ResponseAsync.ConfigureAwait(false);
            return headers.GetValue("date") is { } date && DateTimeOffset.TryParse(date, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at) ? at : null;
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>The last lines of every member's output.</summary>
    public string Logs(int linesPerMember) => string.Concat(_members.Select(m => m.Tail(linesPerMember)));

    /// <summary>Kills every member and deletes the data.</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_members.Select(m => m.DisposeAsync().AsTask())).ConfigureAwait(false);
        try
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A member's last write racing the delete: leave the rest to the temp cleaner.
        }
    }
}

/// <summary>What a workload runs against: endpoints, and whether the harness controls the processes.</summary>
public interface ITargetCluster : IAsyncDisposable
{
    /// <summary>Client URLs of every member.</summary>
    IReadOnlyList<string> Endpoints { get; }

    /// <summary>True if the harness started the members (kill, pause, partitions, membership apply); false for given endpoints.</summary>
    bool CanInjectProcessFaults { get; }
}

/// <summary>A cluster the harness did not start (an existing Arbiter or etcd): only client-side faults apply.</summary>
/// <param name="endpoints">Client URLs.</param>
public sealed class ExternalCluster(IReadOnlyList<string> endpoints) : ITargetCluster
{
    /// <inheritdoc/>
    public IReadOnlyList<string> Endpoints { get; } = endpoints;

    /// <inheritdoc/>
    public bool CanInjectProcessFaults => false;

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
