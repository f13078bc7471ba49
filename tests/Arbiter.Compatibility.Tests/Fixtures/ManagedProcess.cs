using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>
/// A child process whose stdout/stderr lines are captured (for failure reports) and streamed (for
/// tests that wait on output). Disposing kills the whole process tree.
/// </summary>
public sealed class ManagedProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly Channel<string> _stdoutLines = Channel.CreateUnbounded<string>();
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ManagedProcess(Process child, string displayName)
    {
        _process = child;
        DisplayName = displayName;
    }

    /// <summary>Short name used in logs.</summary>
    public string DisplayName { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the process wrote so far, stdout and stderr interleaved.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Stdout lines in order; completes when stdout closes.</summary>
    public ChannelReader<string> StdoutLines => _stdoutLines.Reader;

    /// <summary>The next stdout line starting with <paramref name="prefix"/>; throws with the process's log after <paramref name="timeout"/> or when it exits first.</summary>
    public async Task<string> ExpectLineAsync(string prefix, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            while (await StdoutLines.WaitToReadAsync(deadline.Token))
            {
                while (StdoutLines.TryRead(out var line))
                {
                    if (line.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        return line;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{DisplayName} did not print '{prefix}' within {timeout}\n{Log}");
        }

        throw new InvalidOperationException($"{DisplayName} exited without printing '{prefix}'\n{Log}");
    }

    public static ManagedProcess Start(
        string fileName,
        IEnumerable<string> arguments,
        string displayName,
        IReadOnlyDictionary<string, string>? environment = null,
        bool redirectStdin = false)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectStdin,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        if (environment != null)
        {
            foreach (var (name, value) in environment)
            {
                info.Environment[name] = value;
            }
        }

        var child = new Process { StartInfo = info, EnableRaisingEvents = true };
        var managed = new ManagedProcess(child, displayName);
        child.OutputDataReceived += (_, e) => managed.OnLine(e.Data, isStdout: true);
        child.ErrorDataReceived += (_, e) => managed.OnLine(e.Data, isStdout: false);
        if (!child.Start())
        {
            throw new InvalidOperationException($"could not start {fileName}");
        }

        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        return managed;
    }

    /// <summary>Writes <paramref name="text"/> to stdin and closes it.</summary>
    public async Task WriteStdinAndCloseAsync(string text)
    {
        await _process.StandardInput.WriteAsync(text).ConfigureAwait(false);
        _process.StandardInput.Close();
    }

    /// <summary>Waits for exit and for both output streams to drain, up to <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            await Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task).WaitAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return _process.HasExited;
        }
    }

    /// <summary>Sends a POSIX signal (INT, TERM, KILL, STOP, CONT) to the process.</summary>
    public void Signal(string signalName)
    {
        if (_process.HasExited)
        {
            return;
        }

        // /bin/kill avoids P/Invoke; the process may exit between the check and the signal, which is fine.
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-s", signalName, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        });
        kill?.WaitForExit(5000);
    }

    /// <summary>SIGKILL the process tree and wait for it to be gone.</summary>
    public async Task KillAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }

        await WaitForExitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        _process.Dispose();
    }

    private void OnLine(string? line, bool isStdout)
    {
        if (line == null)
        {
            if (isStdout)
            {
                _stdoutLines.Writer.TryComplete();
                _stdoutClosed.TrySetResult();
            }
            else
            {
                _stderrClosed.TrySetResult();
            }

            return;
        }

        lock (_log)
        {
            _log.Append(isStdout ? "[out] " : "[err] ").AppendLine(line);
        }

        if (isStdout)
        {
            _stdoutLines.Writer.TryWrite(line);
        }
    }
}
