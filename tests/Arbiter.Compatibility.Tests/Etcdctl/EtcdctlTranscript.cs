namespace Arbiter.Compatibility.Tests.Etcdctl;

/// <summary>
/// Runs a script of etcdctl commands and records one line per command — arguments, exit code,
/// stdout and the "Error:" lines of stderr (its other lines carry timestamps) — so that the
/// transcripts of two servers can be compared line by line.
/// </summary>
public static class EtcdctlTranscript
{
    /// <summary>
    /// etcd's errors for a request whose outcome a leader change left unknown: a cluster on a loaded
    /// machine may give one where a single server never does, and the step is then run again.
    /// </summary>
    public static readonly IReadOnlyList<string> LeaderChangeErrors =
    [
        "etcdserver: request timed out",
        "etcdserver: leader changed",
        "etcdserver: no leader",
    ];

    /// <summary>Runs each step in order with <paramref name="etcdctl"/>.</summary>
    public static Task<List<string>> RunAsync(EtcdctlRunner etcdctl, IEnumerable<(string[] Args, string? Stdin)> steps, TimeSpan commandTimeout, bool retryLeaderChanges = false) =>
        RunAsync(args => (etcdctl, args), steps, commandTimeout, retryLeaderChanges);

    /// <summary>
    /// Runs each step in order; <paramref name="route"/> picks the runner (endpoint) of a step and
    /// the arguments actually run (e.g. a certificate's flags for a placeholder); the transcript
    /// shows the arguments as written. With <paramref name="retryLeaderChanges"/>, a step that fails
    /// with one of <see cref="LeaderChangeErrors"/> is run again (up to twice); a write that was applied
    /// before such an error then shows as a mismatch, never as a false match.
    /// </summary>
    public static async Task<List<string>> RunAsync(
        Func<string[], (EtcdctlRunner Runner, string[] Args)> route, IEnumerable<(string[] Args, string? Stdin)> steps, TimeSpan commandTimeout, bool retryLeaderChanges = false)
    {
        ArgumentNullException.ThrowIfNull(route);
        ArgumentNullException.ThrowIfNull(steps);
        var transcript = new List<string>();
        foreach (var (args, stdin) in steps)
        {
            var (etcdctl, run) = route(args);
            var result = await etcdctl.RunAsync(run, stdin, commandTimeout).ConfigureAwait(false);
            for (var retry = 0; retryLeaderChanges && retry < 2 && LeaderChangeErrors.Any(e => result.Stderr.Contains(e, StringComparison.Ordinal)); retry++)
            {
                result = await etcdctl.RunAsync(run, stdin, commandTimeout).ConfigureAwait(false);
            }
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
