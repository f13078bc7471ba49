using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Arbiter.Compatibility.Tests.Gateway;

/// <summary>
/// One test's exchanges with a <see cref="GatewayPair"/>: each request to etcd then to Arbiter, the
/// normalized answers compared. Requests carry each server's own token in <c>Authorization</c> (as
/// etcd's gateway takes it, raw) while <see cref="UseTokens"/> has set one.
/// </summary>
internal sealed class GatewayExchange(GatewayPair pair, ITestOutputHelper output, GatewayNormalizer etcd, GatewayNormalizer arbiter)
{
    private static readonly TimeSpan StreamLineTimeout = TimeSpan.FromSeconds(30);

    private string? _etcdToken;
    private string? _arbiterToken;

    /// <summary>A new exchange whose revisions count from each server's current revision (read with a Range, so before auth is on).</summary>
    public static async Task<GatewayExchange> StartAsync(GatewayPair pair, ITestOutputHelper output)
    {
        ArgumentNullException.ThrowIfNull(pair);
        async Task<long> BaseOf(string endpoint)
        {
            var reply = await pair.SendAsync(endpoint, HttpMethod.Post, "/v3/kv/range", """{"key":"AA=="}""");
            Assert.True(reply.Status == 200, $"{endpoint}: {reply}");
            return long.Parse(JsonNode.Parse(reply.Body)!["header"]!["revision"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        }

        return new GatewayExchange(pair, output, new GatewayNormalizer(await BaseOf(pair.Etcd.Endpoint)), new GatewayNormalizer(await BaseOf(pair.Arbiter.Endpoint)));
    }

    /// <summary>From now on, requests carry these tokens (etcd's and Arbiter's) in <c>Authorization</c>; null for none.</summary>
    public void UseTokens(string? etcdToken, string? arbiterToken)
    {
        _etcdToken = etcdToken;
        _arbiterToken = arbiterToken;
    }

    public GatewayNormalizer Etcd => etcd;

    public GatewayNormalizer Arbiter => arbiter;

    public Task<(GatewayReply Etcd, GatewayReply Arbiter)> PostAsync(string path, string template, params string[] alsoMasked) => SendAsync(HttpMethod.Post, path, template, alsoMasked);

    /// <summary>Sends the request to both and compares the answers; returns them (e.g. to read a token).</summary>
    public async Task<(GatewayReply Etcd, GatewayReply Arbiter)> SendAsync(HttpMethod method, string path, string? template, params string[] alsoMasked)
    {
        var fromEtcd = await pair.SendAsync(pair.Etcd.Endpoint, method, path, template is null ? null : etcd.Request(template), _etcdToken);
        var fromArbiter = await pair.SendAsync(pair.Arbiter.Endpoint, method, path, template is null ? null : arbiter.Request(template), _arbiterToken);
        Compare($"{method} {path} {template}", fromEtcd, fromArbiter, alsoMasked);
        return (fromEtcd, fromArbiter);
    }

    /// <summary>A streaming call whose response stream ends after <paramref name="lines"/> lines (keep-alive: the body's end closes it).</summary>
    public async Task StreamAsync(string path, string template, int lines, bool expectEnd)
    {
        await using var fromEtcd = await GatewayStream.OpenAsync(pair, pair.Etcd.Endpoint, path, etcd.Request(template));
        await using var fromArbiter = await GatewayStream.OpenAsync(pair, pair.Arbiter.Endpoint, path, arbiter.Request(template));
        Assert.Equal((fromEtcd.Status, fromEtcd.ContentType), (fromArbiter.Status, fromArbiter.ContentType));
        await CompareLinesAsync(fromEtcd, fromArbiter, lines);
        if (expectEnd)
        {
            Assert.Null(await fromEtcd.ReadLineAsync(StreamLineTimeout));
            Assert.Null(await fromArbiter.ReadLineAsync(StreamLineTimeout));
        }
    }

    public async Task CompareLinesAsync(GatewayStream fromEtcd, GatewayStream fromArbiter, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var etcdLine = await fromEtcd.ReadLineAsync(StreamLineTimeout);
            var arbiterLine = await fromArbiter.ReadLineAsync(StreamLineTimeout);
            output.WriteLine($"  stream line {i}\n    etcd:    {etcdLine}\n    arbiter: {arbiterLine}");
            Assert.NotNull(etcdLine);
            Assert.NotNull(arbiterLine);
            Assert.Equal(etcd.Normalize(etcdLine), arbiter.Normalize(arbiterLine));
        }
    }

    /// <summary>Runs curl (as a user would, HTTP/1.1) against both; returns etcd's output.</summary>
    public async Task<string> CurlBothAsync(params string[] arguments)
    {
        var fromEtcd = await CurlAsync(pair.Etcd.Endpoint, arguments);
        var fromArbiter = await CurlAsync(pair.Arbiter.Endpoint, arguments);
        output.WriteLine($"curl {string.Join(' ', arguments)}\n  etcd:    {fromEtcd}\n  arbiter: {fromArbiter}");
        Assert.Equal(etcd.Normalize(fromEtcd), arbiter.Normalize(fromArbiter));
        return fromArbiter;
    }

    private static async Task<string> CurlAsync(string endpoint, string[] arguments)
    {
        var start = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-sS");
        start.ArgumentList.Add("--max-time");
        start.ArgumentList.Add("30");
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument.StartsWith('/') ? endpoint + argument : argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("curl did not start (scripts/test.sh installs it)");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(deadline.Token);
        Assert.True(process.ExitCode == 0, $"curl exited {process.ExitCode}: {await stderr}");
        return await stdout;
    }

    private void Compare(string what, GatewayReply fromEtcd, GatewayReply fromArbiter, string[] alsoMasked)
    {
        output.WriteLine($"{what}\n  etcd:    {fromEtcd}\n  arbiter: {fromArbiter}");
        Assert.Equal(
            (fromEtcd.Status, fromEtcd.ContentType, etcd.Normalize(fromEtcd.Body, alsoMasked)),
            (fromArbiter.Status, fromArbiter.ContentType, arbiter.Normalize(fromArbiter.Body, alsoMasked)));
    }
}
