using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// <c>arbiter serve</c> with a connection-limit or Raft timing flag out of range: one clear line naming
/// the flag and exit code 2 (as its other flag errors), before anything listens. The timing checks
/// are etcd's (its messages), plus the peer request timeout's; before them, an election timeout of 0
/// ended the process with a stack trace.
/// </summary>
public sealed class ServeLimitFlagsTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, string> Cases => new()
    {
        { "--max-concurrent-streams", "0", "--max-concurrent-streams 0 is outside 1-4294967295" },
        { "--request-header-timeout", "10 seconds", "--request-header-timeout '10 seconds' is not a duration" },
        { "--max-request-header-bytes", "100", "--max-request-header-bytes 100 is outside 4096-65536" },
        { "--max-watches-per-stream", "0", "--max-watches-per-stream 0 must be at least 1" },
        { "--grpc-keepalive-interval", "10ms", "--grpc-keepalive-interval 10ms must be 0 (off) or at least 1s" },
        { "--heartbeat-interval", "0", "--heartbeat-interval 0 must be at least 1 (ms)" },
        { "--election-timeout", "0", "--election-timeout[0ms] should be at least as 5 times as --heartbeat-interval[100ms]" },
        { "--election-timeout", "400", "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]" },
        { "--election-timeout", "60000", "--election-timeout[60000ms] is too long, and should be set less than 50000ms" },
        { "--peer-request-timeout", "1000", "--peer-request-timeout 1000 must be 0 (derived from the timing) or between 1 and the election timeout (1000 ms), exclusive" },
        { "--peer-request-timeout", "-1", "--peer-request-timeout -1 must be 0" },
        { "--recent-values-cache-bytes", "-1", "--recent-values-cache-bytes -1 must be 0 or more" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task AnOutOfRangeLimitExitsWithOneClearLine(string flag, string value, string expected)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), $"arbiter-limit-flags-{Guid.NewGuid():N}");
        try
        {
            await using var process = ManagedProcess.Start(
                "dotnet",
                [ArbiterProcess.DllPath, "serve", "--data-dir", dataDir, "--listen-client-urls", $"http://127.0.0.1:{PortAllocator.FreePort()}", flag, value],
                "arbiter-limit-flags");
            Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"serve kept running with {flag} {value}\n{process.Log}");
            var errors = process.Log.Split('\n').Where(l => l.StartsWith("[err] ", StringComparison.Ordinal)).Select(l => l[6..].TrimEnd('\r')).ToList();
            output.WriteLine($"{flag} {value}: exit {process.ExitCode}; {string.Join(" | ", errors)}");
            Assert.Equal(2, process.ExitCode);
            var line = Assert.Single(errors);
            Assert.StartsWith("error: ", line, StringComparison.Ordinal);
            Assert.Contains(expected, line, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }
}
