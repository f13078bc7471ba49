using System.Diagnostics;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>What one run of an <c>arbiter</c> command printed and how it ended.</summary>
public sealed record ArbiterCliResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>Stderr's non-empty lines.</summary>
    public IReadOnlyList<string> StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
}

/// <summary>Runs a one-shot <c>arbiter</c> command (the arbiter.dll built next to the tests), stdout and stderr kept apart.</summary>
public static class ArbiterCli
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(120);

    public static async Task<ArbiterCliResult> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ArbiterProcess.DllPath);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"arbiter {string.Join(' ', arguments)} did not exit within {DefaultTimeout}");
        }

        return new ArbiterCliResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>
    /// Runs a command that must be refused: a non-zero exit, exactly one stderr line starting
    /// "error: " and containing <paramref name="expected"/>, and none of <paramref name="mustNotExist"/>
    /// (files, directories or their ".part" leftovers) created.
    /// </summary>
    public static async Task AssertRefusedAsync(string what, string[] arguments, string expected, ITestOutputHelper output, params string?[] mustNotExist)
    {
        var result = await RunAsync(arguments).ConfigureAwait(false);
        output.WriteLine($"{what}: exit {result.ExitCode}: {result.Stderr.Trim()}");
        Assert.True(result.ExitCode != 0, $"{what}: {result}");
        Assert.True(result.StderrLines.Count == 1, $"{what}: expected one line on stderr: {result}");
        Assert.StartsWith("error: ", result.StderrLines[0], StringComparison.Ordinal);
        Assert.Contains(expected, result.StderrLines[0], StringComparison.Ordinal);
        foreach (var path in mustNotExist)
        {
            Assert.False(path is not null && (Directory.Exists(path) || File.Exists(path) || File.Exists(path + ".part")), $"{what}: {path} was created");
        }
    }
}
