using System.Text;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>
/// A server (etcd or Arbiter) run as a real process on loopback with its own data dir. It can be
/// stopped, killed and restarted on the same data dir and ports; disposing kills it and deletes the dir.
/// </summary>
public abstract class ServerProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private readonly StringBuilder _previousLogs = new();
    private ManagedProcess? _process;

    protected ServerProcess(string name)
    {
        Name = name;
        DataDir = Path.Combine(Path.GetTempPath(), $"arbiter-compat-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(DataDir);
        AllocatePorts();
    }

    /// <summary>Member name passed with --name.</summary>
    public string Name { get; }

    public string DataDir { get; }

    public int ClientPort { get; private set; }

    public int PeerPort { get; private set; }

    /// <summary>"http://127.0.0.1:port".</summary>
    public string Endpoint => $"http://127.0.0.1:{ClientPort}";

    public string PeerUrl => $"http://127.0.0.1:{PeerPort}";

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The running process's id (null before the first start).</summary>
    public int? ProcessId => _process?.Id;

    /// <summary>Output of every run of the process so far.</summary>
    public string Log
    {
        get
        {
            lock (_previousLogs)
            {
                return _previousLogs + (_process?.Log ?? string.Empty);
            }
        }
    }

    /// <summary>Starts the process and waits until Maintenance.Status answers (unless <paramref name="waitReady"/> is false).</summary>
    public async Task StartAsync(bool isRestart = false, bool waitReady = true)
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"{Name} is already running");
        }

        // A fresh server may lose a race for the port it was given; a restart must keep its ports.
        var attemptsMax = isRestart ? 1 : 3;
        for (var attempt = 1; ; attempt++)
        {
            RetireProcessLog();
            _process = ManagedProcess.Start(FileName, Arguments(isRestart), Name, Environment);
            if (!waitReady)
            {
                return;
            }

            try
            {
                await WaitReadyAsync().ConfigureAwait(false);
                return;
            }
            catch (Exception) when (attempt < attemptsMax && _process.HasExited)
            {
                AllocatePorts();
            }
            catch (Exception e)
            {
                await _process.KillAsync().ConfigureAwait(false);
                throw new InvalidOperationException($"{Name} did not become ready: {e.Message}\n--- log ---\n{Log}", e);
            }
        }
    }

    /// <summary>SIGTERM and wait for a clean exit (SIGKILL if it takes too long).</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (_process == null)
        {
            return;
        }

        _process.Signal("TERM");
        if (!await _process.WaitForExitAsync(timeout).ConfigureAwait(false))
        {
            await _process.KillAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"{Name} did not exit within {timeout} after SIGTERM\n{Log}");
        }
    }

    /// <summary>
    /// Waits for the process to exit by itself (no signal) and returns its exit code; null if it
    /// is still running after <paramref name="timeout"/> (then it is left running).
    /// </summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        if (_process == null)
        {
            throw new InvalidOperationException($"{Name} was never started");
        }

        return await _process.WaitForExitAsync(timeout).ConfigureAwait(false) ? _process.ExitCode : null;
    }

    /// <summary>Sends a POSIX signal (STOP, CONT, TERM…) to the running process.</summary>
    public void Signal(string signalName) => _process?.Signal(signalName);

    /// <summary>SIGKILL: no chance to flush anything.</summary>
    public async Task KillAsync()
    {
        if (_process != null)
        {
            await _process.KillAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process != null)
        {
            await _process.DisposeAsync().ConfigureAwait(false);
        }

        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the temp dir is unique, a leftover does not affect other runs.
        }

        GC.SuppressFinalize(this);
    }

    protected abstract string FileName { get; }

    protected virtual IReadOnlyDictionary<string, string>? Environment => null;

    protected abstract IEnumerable<string> Arguments(bool isRestart);

    private void AllocatePorts()
    {
        ClientPort = PortAllocator.FreePort();
        PeerPort = PortAllocator.FreePort();
    }

    private void RetireProcessLog()
    {
        if (_process == null)
        {
            return;
        }

        lock (_previousLogs)
        {
            _previousLogs.Append(_process.Log).AppendLine("--- _process exited ---");
        }

        _process = null;
    }

    private async Task WaitReadyAsync()
    {
        using var channel = GrpcChannel.ForAddress(Endpoint);
        var maintenance = new Maintenance.MaintenanceClient(channel);
        var deadline = DateTime.UtcNow + ReadyTimeout;
        while (true)
        {
            if (_process!.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode} before it was ready");
            }

            try
            {
                await maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2)).ConfigureAwait(false);
                return;
            }
            catch (RpcException) when (DateTime.UtcNow < deadline)
            {
                // Not listening yet; poll again shortly.
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }
}
