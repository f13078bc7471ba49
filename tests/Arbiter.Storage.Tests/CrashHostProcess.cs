using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;

namespace Arbiter.Storage.Tests;

/// <summary>The crash host running as a real OS process, its stdout lines collected as they arrive.</summary>
internal sealed class CrashHostProcess : IDisposable
{
    private readonly Process _process;
    private readonly BlockingCollection<string> _lines = [];
    private readonly Task _reader;
    private readonly Task<string> _stderr;

    private CrashHostProcess(Process process)
    {
        _process = process;
        _reader = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                _lines.Add(line);
            }

            _lines.CompleteAdding();
        });
        _stderr = process.StandardError.ReadToEndAsync();
    }

    public static string DllPath
    {
        get
        {
            string path = typeof(CrashHostProcess).Assembly
                .GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "CrashHostPath").Value!;
            path = Path.GetFullPath(path);
            Assert.True(File.Exists(path), $"crash host not built at {path}");
            return path;
        }
    }

    public static CrashHostProcess Start(string directoryPath, int seed)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(DllPath);
        start.ArgumentList.Add(directoryPath);
        start.ArgumentList.Add(seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return new CrashHostProcess(Process.Start(start)!);
    }

    /// <summary>Next stdout line, or null at end of output; fails the test past the deadline.</summary>
    public string? NextLine(DateTime deadlineUtc)
    {
        TimeSpan left = deadlineUtc - DateTime.UtcNow;
        if (left <= TimeSpan.Zero)
        {
            Assert.Fail("crash host: deadline passed waiting for output");
        }

        try
        {
            if (_lines.TryTake(out string? line, left))
            {
                return line;
            }
        }
        catch (InvalidOperationException)
        {
            return null; // completed and drained
        }

        if (_lines.IsCompleted)
        {
            return null;
        }

        Assert.Fail("crash host: deadline passed waiting for output");
        return null;
    }

    /// <summary>SIGKILL on Unix: no finalizers, no flush, no chance to finish the batch in flight.</summary>
    public void Kill(TimeSpan timeout)
    {
        _process.Kill();
        Assert.True(_process.WaitForExit(timeout), "crash host did not die after SIGKILL");
        Assert.True(_reader.Wait(timeout), "crash host stdout did not close");
    }

    public int WaitForExit(TimeSpan timeout)
    {
        Assert.True(_process.WaitForExit(timeout), "crash host did not exit");
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public string StandardError(TimeSpan timeout)
    {
        Assert.True(_stderr.Wait(timeout), "crash host stderr did not close");
        return _stderr.Result;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
        _lines.Dispose();
    }
}
