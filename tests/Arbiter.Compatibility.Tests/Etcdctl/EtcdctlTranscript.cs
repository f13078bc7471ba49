namespace Arbiter.Compatibility.Tests.Etcdctl;

/// <summary>
/// Runs a script of etcdctl commands and records one line per command — arguments, exit code,
/// stdout and the "Error:" lines of stderr (its other lines carry timestamps) — so that the
/// transcripts of two servers can be compared line by line.
/// </summary>
public static class EtcdctlTranscript
{
    /// <summary>Runs each step in order with <paramref name="etcdctl"/>.</summary>
    public static Task<List<string>> RunAsync(EtcdctlRunner etcdctl, IEnumerable<(string[] Args, string? Stdin)> steps, TimeSpan commandTimeout) =>
        RunAsync(args => (etcdctl, args), steps, commandTimeout);

    /// <summary>
    /// Runs each step in order; <paramref name="route"/> picks the runner (endpoint) of a step and
    /// the arguments actually run (e.g. a certificate's flags for a placeholder); the transcript
    /// shows the arguments as written.
    /// </summary>
    public static async Task<List<string>> RunAsync(
        Func<string[], (EtcdctlRunner Runner, string[] Args)> route, IEnumerable<(string[] Args, string? Stdin)> steps, TimeSpan commandTimeout)
    {
        ArgumentNullException.ThrowIfNull(route);
        ArgumentNullException.ThrowIfNull(steps);
        var transcript = new List<string>();
        foreach (var (args, stdin) in steps)
        {
            var (etcdctl, run) = route(args);
            var result = await etcdctl.RunAsync(run, stdin, commandTimeout).ConfigureAwait(false);
            var errors = result.Stderr.Split('\n').Where(l => l.StartsWith("Error:", StringComparison.Ordinal));
            transcript.Add($"etcdctl {string.Join(' ', args)} → {result.ExitCode} | {result.Stdout.Trim().ReplaceLineEndings(" / ")} | {string.Join(" / ", errors)}");
        }

        return transcript;
    }

    /// <summary>Fails on the first step where <paramref name="actual"/> differs from <paramref name="expected"/> (etcd's), naming it.</summary>
    public static void AssertSame(IReadOnlyList<string> expected, IReadOnlyList<string> actual, string context)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i] == actual[i], $"step {i} differs:\netcd:    {expected[i]}\narbiter: {actual[i]}\n\n{context}");
        }
    }
}
