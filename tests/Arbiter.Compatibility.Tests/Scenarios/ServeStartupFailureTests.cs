using System.Net;
using System.Net.Sockets;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// <c>arbiter serve</c> that cannot start says why in one line and exits non-zero: 2 for a malformed
/// flag, 1 for a runtime condition (a port in use, an address not on this machine, a data directory
/// that cannot be made) — and, for the listen problems, before anything is created on disk.
/// </summary>
public sealed class ServeStartupFailureTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases =>
    [
        "client URL without an IP", "client port in use", "peer port in use", "metrics port in use",
        "address not of this machine", "same address twice", "data directory under a file",
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Start_up_failure_is_one_line_and_a_non_zero_exit(string problem)
    {
        // A port another process listens on (the test holds it for the whole case).
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var takenUrl = $"http://127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";
        var client = $"http://127.0.0.1:{PortAllocator.FreePort()}";
        var peer = $"http://127.0.0.1:{PortAllocator.FreePort()}";
        var dataDir = Path.Combine(Path.GetTempPath(), $"arbiter-startup-{Guid.NewGuid():N}");
        var (arguments, exitCode, expected) = problem switch
        {
            "client URL without an IP" => (new[] { "--listen-client-urls", "http://bogus:abc" }, 2, "'http://bogus:abc' is not a listen URL of the form http://<ip>:<port>"),
            "client port in use" => (["--listen-client-urls", takenUrl], 1, $"cannot listen on {takenUrl} (--listen-client-urls): address already in use"),
            "peer port in use" => (["--listen-client-urls", client, "--initial-cluster", $"default={takenUrl}", "--initial-advertise-peer-urls", takenUrl], 1, $"cannot listen on {takenUrl} (--listen-peer-urls): address already in use"),
            "metrics port in use" => (["--listen-client-urls", client, "--listen-metrics-urls", takenUrl], 1, $"cannot listen on {takenUrl} (--listen-metrics-urls): address already in use"),
            "address not of this machine" => (["--listen-client-urls", "http://192.0.2.1:2379"], 1, "cannot listen on http://192.0.2.1:2379 (--listen-client-urls): cannot assign requested address"),
            "same address twice" => (["--listen-client-urls", client, "--listen-metrics-urls", client], 2, "is listed twice"),
            "data directory under a file" => (["--listen-client-urls", client], 1, "cannot open data directory"),
            _ => throw new ArgumentOutOfRangeException(nameof(problem)),
        };

        var underAFile = problem == "data directory under a file";
        if (underAFile)
        {
            File.WriteAllText(dataDir, "a file, not a directory");
        }

        try
        {
            var dataDirArgument = underAFile ? Path.Combine(dataDir, "data") : dataDir;
            await using var process = ManagedProcess.Start("dotnet", [ArbiterProcess.DllPath, "serve", "--data-dir", dataDirArgument, .. arguments], "arbiter-startup");
            Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"serve kept running with {problem}\n{process.Log}");
            var lines = process.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();
            output.WriteLine($"{problem}: exit {process.ExitCode}\n{string.Join('\n', lines)}");
            Assert.Equal(exitCode, process.ExitCode);
            var line = Assert.Single(lines);
            Assert.StartsWith("[err] error: ", line, StringComparison.Ordinal);
            Assert.Contains(expected, line, StringComparison.Ordinal);
            if (!underAFile)
            {
                Assert.False(Directory.Exists(dataDir), $"{problem}: the data directory was created");
            }
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }

            File.Delete(dataDir);
        }
    }
}
