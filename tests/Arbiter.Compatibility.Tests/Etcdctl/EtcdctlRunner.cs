using System.Diagnostics;
using System.Text;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Etcdctl;

/// <summary>Exit code and output of one etcdctl run.</summary>
public sealed record EtcdctlResult(string Arguments, int ExitCode, string Stdout, string Stderr)
{
    public string[] Lines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Throws with the full output unless the command succeeded.</summary>
    public EtcdctlResult EnsureSuccess()
    {
        return ExitCode == 0
            ? this
            : throw new InvalidOperationException($"etcdctl {Arguments} exited {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}");
    }

    public override string ToString() => $"etcdctl {Arguments} → {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
}

/// <summary>
/// Runs the real /usr/bin/etcdctl (API v3) against one endpoint. Keeps a transcript for failure reports.
/// </summary>
public sealed class EtcdctlRunner(string endpoint)
{
    public const string BinaryPath = "/usr/bin/etcdctl";
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);
    private static readonly Dictionary<string, string> EtcdctlEnvironment = new() { ["ETCDCTL_API"] = "3" };
    private readonly StringBuilder _transcript = new();

    public string Transcript
    {
        get
        {
            lock (_transcript)
            {
                return _transcript.ToString();
            }
        }
    }

    public Task<EtcdctlResult> RunAsync(params string[] arguments) => RunAsync(arguments, stdin: null, DefaultTimeout);

    /// <summary>Runs to completion; kills it and throws when <paramref name="timeout"/> passes.</summary>
    public async Task<EtcdctlResult> RunAsync(IReadOnlyList<string> arguments, string? stdin, TimeSpan timeout)
    {
        await using var process = ManagedProcess.Start(BinaryPath, AllArguments(arguments), "etcdctl", EtcdctlEnvironment, redirectStdin: stdin != null);
        if (stdin != null)
        {
            await process.WriteStdinAndCloseAsync(stdin).ConfigureAwait(false);
        }

        var exited = await process.WaitForExitAsync(timeout).ConfigureAwait(false);
        var stdout = new StringBuilder();
        while (process.StdoutLines.TryRead(out var line))
        {
            stdout.Append(line).Append('\n');
        }

        var stderr = string.Join('\n', process.Log.Split('\n').Where(l => l.StartsWith("[err] ", StringComparison.Ordinal)).Select(l => l[6..].TrimEnd('\r')));
        var result = new EtcdctlResult(string.Join(' ', arguments), exited ? process.ExitCode : -1, stdout.ToString(), stderr);
        Record(result.ToString());
        return exited ? result : throw new TimeoutException($"etcdctl did not finish within {timeout}: {result}");
    }

    /// <summary>Starts a long-running command (watch, lock, elect, keep-alive) whose lines are read as they come.</summary>
    public EtcdctlHandle Start(params string[] arguments)
    {
        Record($"etcdctl {string.Join(' ', arguments)} (started)");
        var process = ManagedProcess.Start(BinaryPath, AllArguments(arguments), "etcdctl", EtcdctlEnvironment);
        return new EtcdctlHandle(process, string.Join(' ', arguments), Record);
    }

    private IEnumerable<string> AllArguments(IReadOnlyList<string> arguments) =>
        [$"--endpoints={endpoint}", "--dial-timeout=5s", "--command-timeout=20s", .. arguments];

    private void Record(string text)
    {
        lock (_transcript)
        {
            _transcript.AppendLine(text);
        }
    }
}

/// <summary>A running etcdctl whose stdout lines can be awaited one by one with deadlines.</summary>
public sealed class EtcdctlHandle : IAsyncDisposable
{
    private readonly ManagedProcess _process;
    private readonly string _arguments;
    private readonly Action<string> _record;
    private readonly List<string> _received = [];

    internal EtcdctlHandle(ManagedProcess process, string arguments, Action<string> record)
    {
        _process = process;
        _arguments = arguments;
        _record = record;
    }

    /// <summary>Lines read so far by the Read* methods.</summary>
    public IReadOnlyList<string> Received => _received;

    public bool HasExited => _process.HasExited;

    public string Log => _process.Log;

    /// <summary>SIGKILL etcdctl (no goodbye to the server) and wait for it to be gone.</summary>
    public Task KillAsync() => _process.KillAsync();

    /// <summary>Next stdout line, or a TimeoutException naming what was seen so far.</summary>
    public async Task<string> ReadLineAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var line = await _process.StdoutLines.ReadAsync(cts.Token).ConfigureAwait(false);
            _received.Add(line);
            return line;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"etcdctl {_arguments}: no line within {timeout}\n{_process.Log}");
        }
        catch (System.Threading.Channels.ChannelClosedException)
        {
            throw new InvalidOperationException($"etcdctl {_arguments}: output ended\n{_process.Log}");
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> lines, all within one deadline.</summary>
    public async Task<IReadOnlyList<string>> ReadLinesAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var lines = new List<string>();
        for (var i = 0; i < count; i++)
        {
            lines.Add(await ReadLineAsync(Remaining(deadline)).ConfigureAwait(false));
        }

        return lines;
    }

    /// <summary>Reads lines until one satisfies <paramref name="predicate"/>.</summary>
    public async Task<string> ReadUntilAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var line = await ReadLineAsync(Remaining(deadline)).ConfigureAwait(false);
            if (predicate(line))
            {
                return line;
            }
        }
    }

    /// <summary>True when a line is already buffered (no waiting).</summary>
    public bool HasPendingLine => _process.StdoutLines.TryPeek(out _);

    /// <summary>SIGINT, as Ctrl-C: etcdctl releases locks/leases on the way out.</summary>
    public async Task<bool> InterruptAsync(TimeSpan timeout)
    {
        _process.Signal("INT");
        return await _process.WaitForExitAsync(timeout).ConfigureAwait(false);
    }

    public Task<bool> WaitForExitAsync(TimeSpan timeout) => _process.WaitForExitAsync(timeout);

    public int ExitCode => _process.ExitCode;

    public async ValueTask DisposeAsync()
    {
        _record($"etcdctl {_arguments} (ended)\n{_process.Log}");
        await _process.DisposeAsync().ConfigureAwait(false);
    }

    private static TimeSpan Remaining(DateTime deadline)
    {
        var left = deadline - DateTime.UtcNow;
        return left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1);
    }
}
