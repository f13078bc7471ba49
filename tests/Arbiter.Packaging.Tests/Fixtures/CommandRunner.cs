using System.Diagnostics;
using System.Text;

namespace Arbiter.Packaging.Tests.Fixtures;

/// <summary>Runs a command to completion with a deadline, as a user would at a shell.</summary>
public static class CommandRunner
{
    /// <summary>
    /// Runs <paramref name="fileName"/> in <paramref name="workingDirectory"/>; returns its output, or
    /// throws with the output when it fails or outlives <paramref name="timeout"/> (then it is killed).
    /// </summary>
    public static async Task<string> RunAsync(
        string fileName, IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string> environment, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        Isolate(info.Environment, environment);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        var started = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Describe(info)} did not finish within {timeout.TotalSeconds:0} s:\n{Text(output)}");
        }

        process.WaitForExit(); // drains the output events
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Describe(info)} exited {process.ExitCode} after {started.Elapsed.TotalSeconds:0} s:\n{Text(output)}");
        }

        return $"$ {Describe(info)}  ({started.Elapsed.TotalSeconds:0.0} s)\n{Text(output)}";
    }

    /// <summary>
    /// The child sees <paramref name="environment"/> and none of the MSBuild variables `dotnet test`
    /// sets for itself, which would make a child `dotnet build` use the test host's MSBuild.
    /// </summary>
    public static void Isolate(IDictionary<string, string?> target, IReadOnlyDictionary<string, string> environment)
    {
        foreach (var name in target.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            target.Remove(name);
        }

        foreach (var (name, value) in environment)
        {
            target[name] = value;
        }
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static string Describe(ProcessStartInfo info) => $"{info.FileName} {string.Join(' ', info.ArgumentList)}";
}
