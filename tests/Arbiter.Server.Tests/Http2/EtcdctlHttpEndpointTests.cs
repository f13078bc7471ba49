using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Arbiter.Server.Tests.Infrastructure;

namespace Arbiter.Server.Tests.Http2;

/// <summary>
/// The real etcdctl 3.4 with <c>--endpoints=http://…</c>: its per-endpoint commands send the
/// URL as <c>:authority</c>, which Kestrel would reset without the normalization middleware.
/// </summary>
public sealed class EtcdctlHttpEndpointTests
{
    private const string Etcdctl = "/usr/bin/etcdctl";
    private static readonly TimeSpan ProcessDeadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task PerEndpointCommandsAndKvWorkWithHttpEndpoint()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true);
        var endpoint = backend.Endpoint!;
        Assert.StartsWith("http://127.0.0.1:", endpoint, StringComparison.Ordinal);

        Assert.Contains("OK", await RunAsync(endpoint, "put", "greeting", "hello"), StringComparison.Ordinal);
        Assert.Contains("hello", await RunAsync(endpoint, "get", "greeting"), StringComparison.Ordinal);
        Assert.Contains(endpoint, await RunAsync(endpoint, "endpoint", "status"), StringComparison.Ordinal);
        Assert.Contains(endpoint, await RunAsync(endpoint, "endpoint", "hashkv"), StringComparison.Ordinal);
        Assert.Contains("Finished defragmenting", await RunAsync(endpoint, "defrag"), StringComparison.Ordinal);

        // move-leader to the only member: a no-op transfer that must reach the server.
        using var status = JsonDocument.Parse(await RunAsync(endpoint, "endpoint", "status", "-w", "json"));
        var memberId = status.RootElement[0].GetProperty("Status").GetProperty("header").GetProperty("member_id").GetUInt64();
        Assert.Contains("Leadership transferred", await RunAsync(endpoint, "move-leader", memberId.ToString("x", CultureInfo.InvariantCulture)), StringComparison.Ordinal);
    }

    internal static async Task<string> RunAsync(string endpoint, params string[] command)
    {
        var start = new ProcessStartInfo(Etcdctl)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["ETCDCTL_API"] = "3";
        start.ArgumentList.Add($"--endpoints={endpoint}");
        start.ArgumentList.Add("--dial-timeout=5s");
        start.ArgumentList.Add("--command-timeout=5s");
        foreach (var argument in command)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Etcdctl}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(ProcessDeadline);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"etcdctl {string.Join(' ', command)} did not exit within {ProcessDeadline}");
        }

        var output = await stdout;
        var errors = await stderr;
        Assert.True(process.ExitCode == 0, $"etcdctl {string.Join(' ', command)} exited {process.ExitCode}: {output} {errors}");
        return output;
    }
}
