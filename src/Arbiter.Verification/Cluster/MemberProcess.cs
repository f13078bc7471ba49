using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Arbiter.Verification.Cluster;

/// <summary>Which server the harness starts.</summary>
public enum ServerKind
{
    /// <summary><c>arbiter serve</c>.</summary>
    Arbiter,

    /// <summary>A real etcd (Debian's <c>/usr/bin/etcd</c>, 3.4).</summary>
    Etcd,
}

/// <summary>
/// One member the harness started: a real server process on its own loopback address (127.0.x.y),
/// under its own uid when partitions are wanted (so that iptables can tell whose packets they are:
/// every loopback connection leaves from 127.0.0.1). It can be killed (SIGKILL), paused (SIGSTOP),
/// resumed and restarted on the same data dir and address.
/// </summary>
public sealed class MemberProcess : IAsyncDisposable
{
    private const int LogLinesMax = 400;
    private readonly Queue<string> _log = new();
    private readonly HarnessCluster _cluster;
    private Process? _process;

    internal MemberProcess(HarnessCluster cluster, string name, string address, int? uid)
    {
        _cluster = cluster;
        Name = name;
        Address = address;
        Uid = uid;
        DataDir = Path.Combine(cluster.WorkDirectory, name);
        if (cluster.Options.ClockSkew)
        {
            ClockOffsetFile = Path.Combine(cluster.WorkDirectory, $"{name}.faketime");
            Nemeses.FakeTime.WriteOffset(ClockOffsetFile, 0);
        }
    }

    /// <summary>Member name.</summary>
    public string Name { get; }

    /// <summary>Its own loopback address, e.g. 127.0.42.11.</summary>
    public string Address { get; }

    /// <summary>The uid it runs as (null: the harness's own).</summary>
    public int? Uid { get; }

    /// <summary>Its data directory.</summary>
    public string DataDir { get; private set; }

    /// <summary>Client URL.</summary>
    public string Endpoint => $"http://{Address}:{HarnessCluster.ClientPort}";

    /// <summary>Peer URL.</summary>
    public string PeerUrl => $"http://{Address}:{HarnessCluster.PeerPort}";

    /// <summary>True while its process runs (paused counts as running).</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>True between <see cref="Pause"/> and <see cref="Resume"/>.</summary>
    public bool IsPaused { get; private set; }

    /// <summary>The libfaketime offset file its wall clock follows (null: its clock is the machine's).</summary>
    public string? ClockOffsetFile { get; }

    /// <summary>How far its wall clock is set off the machine's, seconds (0 without clock skew).</summary>
    public double ClockOffsetSeconds { get; private set; }

    /// <summary>
    /// Moves its wall clock <paramref name="offsetSeconds"/> off the machine's (0 resets it); it shows
    /// within <see cref="Nemeses.FakeTime.CacheDurationSeconds"/>. Its monotonic clock is not moved.
    /// </summary>
    public void SetClockOffset(double offsetSeconds)
    {
        var file = ClockOffsetFile ?? throw new InvalidOperationException($"{CurrentName} was not started with clock skew enabled (HarnessClusterOptions.ClockSkew)");
        Nemeses.FakeTime.WriteOffset(file, offsetSeconds);
        ClockOffsetSeconds = offsetSeconds;
    }

    /// <summary><c>new</c> for founders, <c>existing</c> for a member added later.</summary>
    public string InitialClusterState { get; set; } = "new";

    /// <summary>The last lines of its output.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return string.Join('\n', _log);
            }
        }
    }

    /// <summary>Starts the process (it is up when it answers; see <see cref="HarnessCluster.WaitHealthyAsync"/>).</summary>
    public void Start()
    {
        if (IsRunning)
        {
            return;
        }

        Directory.CreateDirectory(DataDir);
        if (Uid is not null && !OperatingSystem.IsWindows())
        {
            // The member runs as another uid; the harness (root) can still delete what it writes.
            File.SetUnixFileMode(DataDir, (UnixFileMode)0x1FF);
        }

        var arguments = _cluster.Kind == ServerKind.Arbiter ? ArbiterArguments() : EtcdArguments();
        var (file, prefix) = _cluster.Kind == ServerKind.Arbiter ? _cluster.ServerCommand : ("/usr/bin/etcd", []);
        List<string> command = [file, .. prefix, .. arguments];
        if (ClockOffsetFile is { } offsetFile)
        {
            // Through env, after setpriv: libfaketime must load first in the member's own uid (a root
            // setpriv would create libfaketime's per-pid semaphore, which the member could not open).
            command = ["/usr/bin/env", .. Nemeses.FakeTime.Environment(offsetFile).Select(e => $"{e.Key}={e.Value}"), .. command];
        }

        if (Uid is { } uid)
        {
            command = ["setpriv", $"--reuid={uid}", $"--regid={uid}", "--clear-groups", .. command];
        }

        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in command.Skip(1))
        {
            info.ArgumentList.Add(a);
        }

        if (Uid is not null)
        {
            info.Environment["HOME"] = DataDir;
            info.Environment["DOTNET_CLI_HOME"] = DataDir;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        IsPaused = false;
    }

    /// <summary>SIGKILL, and waits until it is gone.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Exited meanwhile.
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            RemoveFakeTimeLeftovers(process.Id);
        }

        IsPaused = false;
    }

    /// <summary>SIGSTOP: the process stays, does nothing, answers nothing.</summary>
    public void Pause()
    {
        if (_process is { HasExited: false } process)
        {
            Signal(process.Id, "STOP");
            IsPaused = true;
        }
    }

    /// <summary>SIGCONT.</summary>
    public void Resume()
    {
        if (_process is { HasExited: false } process && IsPaused)
        {
            Signal(process.Id, "CONT");
        }

        IsPaused = false;
    }

    /// <summary>Deletes its data (stopped first): for a member that is removed and added back as new.</summary>
    public async Task WipeAsync(string newName)
    {
        await KillAsync().ConfigureAwait(false);
        DataDir = Path.Combine(_cluster.WorkDirectory, newName);
        Directory.CreateDirectory(DataDir);
        Rename(newName);
    }

    private void Rename(string newName) => _name = newName;

    private string? _name;

    /// <summary>The name it is started under (changes when it is re-added as a new member).</summary>
    public string CurrentName => _name ?? Name;

    /// <summary>
    /// libfaketime keeps a semaphore and a shared-memory segment per pid in /dev/shm and removes them
    /// only on a clean exit; left behind by a SIGKILL they would stop a later process with that pid
    /// under another uid from starting with libfaketime.
    /// </summary>
    private void RemoveFakeTimeLeftovers(int pid)
    {
        if (ClockOffsetFile is null)
        {
            return;
        }

        foreach (var leftover in (string[])[$"/dev/shm/sem.faketime_sem_{pid}", $"/dev/shm/faketime_shm_{pid}"])
        {
            try
            {
                File.Delete(leftover);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not ours to remove, or already gone.
            }
        }
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-s", signal, pid.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
        kill?.WaitForExit(5_000);
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.Enqueue(line);
            while (_log.Count > LogLinesMax)
            {
                _log.Dequeue();
            }
        }
    }

    private List<string> ArbiterArguments() =>
    [
        "serve",
        "--name", CurrentName,
        "--data-dir", DataDir,
        "--listen-client-urls", Endpoint,
        "--advertise-client-urls", Endpoint,
        "--initial-advertise-peer-urls", PeerUrl,
        "--listen-peer-urls", PeerUrl,
        "--initial-cluster", _cluster.InitialClusterFor(this),
        "--initial-cluster-state", InitialClusterState,
        "--initial-cluster-token", _cluster.Token,
        "--heartbeat-interval", Text(_cluster.Options.HeartbeatIntervalMs),
        "--election-timeout", Text(_cluster.Options.ElectionTimeoutMs),
        "--log-level", _cluster.Options.MemberLogLevel,
    ];

    private List<string> EtcdArguments() =>
    [
        "--name", CurrentName,
        "--data-dir", DataDir,
        "--listen-client-urls", Endpoint,
        "--advertise-client-urls", Endpoint,
        "--initial-advertise-peer-urls", PeerUrl,
        "--listen-peer-urls", PeerUrl,
        "--initial-cluster", _cluster.InitialClusterFor(this),
        "--initial-cluster-state", InitialClusterState,
        "--initial-cluster-token", _cluster.Token,
        "--heartbeat-interval", Text(_cluster.Options.HeartbeatIntervalMs),
        "--election-timeout", Text(_cluster.Options.ElectionTimeoutMs),
        "--logger", "zap",
        "--log-level", "warn",
        "--log-outputs", "stderr",
    ];

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Kills the process.</summary>
    public async ValueTask DisposeAsync()
    {
        Resume();
        await KillAsync().ConfigureAwait(false);
        _process?.Dispose();
    }

    /// <summary>Name, address and state, for logs.</summary>
    public override string ToString() => $"{CurrentName}@{Address}{(IsRunning ? IsPaused ? " (paused)" : string.Empty : " (down)")}";

    /// <summary>The last lines of output, prefixed with the member's name.</summary>
    public string Tail(int lines)
    {
        lock (_log)
        {
            var sb = new StringBuilder();
            foreach (var line in _log.Skip(Math.Max(0, _log.Count - lines)))
            {
                sb.Append('[').Append(CurrentName).Append("] ").AppendLine(line);
            }

            return sb.ToString();
        }
    }
}
