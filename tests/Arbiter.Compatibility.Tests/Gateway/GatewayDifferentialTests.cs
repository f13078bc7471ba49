using System.Net;
using System.Text;

namespace Arbiter.Compatibility.Tests.Gateway;

/// <summary>
/// etcd's HTTP/JSON gateway, differentially: the same HTTP/1.1 requests to a real etcd 3.4 and to
/// Arbiter, and the same status codes, media types and bodies back (ids, terms, raft indexes, sizes
/// and hashes masked; revisions counted from each test's start). Tests in this class run one after
/// another on the same pair of servers, each under its own key prefix.
/// </summary>
[Trait("Target", "Arbiter")]
public sealed class GatewayDifferentialTests(GatewayPair pair, ITestOutputHelper output) : IClassFixture<GatewayPair>
{
    [Fact]
    public async Task PutRangeDelete()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("kv/a")}}}","value":"{{{B64("1")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("kv/b")}}}","value":"{{{B64("2")}}}","prev_kv":true}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("kv/b")}}}","value":"{{{B64("3")}}}","prev_kv":true}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("kv/c")}}}","value":"{{{B64("4")}}}","ignore_value":false}""");
        var prefix = $$$"""{"key":"{{{B64("kv/")}}}","range_end":"{{{B64("kv0")}}}" """;
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("kv/a")}}}"}""");
        await t.PostAsync("/v3/kv/range", prefix + "}");
        await t.PostAsync("/v3/kv/range", prefix + ""","limit":2}""");
        await t.PostAsync("/v3/kv/range", prefix + ""","count_only":true}""");
        await t.PostAsync("/v3/kv/range", prefix + ""","keys_only":true}""");
        await t.PostAsync("/v3/kv/range", prefix + ""","sort_order":"DESCEND","sort_target":"MOD"}""");
        await t.PostAsync("/v3/kv/range", prefix + ""","serializable":true,"revision":"{rev+2}"}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("kv/none")}}}"}""");

        // lowerCamelCase names are accepted as well as the proto's, as grpc-gateway accepts them.
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("kv/")}}}","rangeEnd":"{{{B64("kv0")}}}","countOnly":true}""");
        await t.PostAsync("/v3/kv/deleterange", $$$"""{"key":"{{{B64("kv/b")}}}"}""");
        await t.PostAsync("/v3/kv/deleterange", prefix + ""","prev_kv":true}""");
        await t.PostAsync("/v3/kv/range", prefix + "}");
    }

    [Fact]
    public async Task Txn()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("txn/x")}}}","value":"{{{B64("1")}}}"}""");
        var txn = $$$"""
            {"compare":[{"key":"{{{B64("txn/x")}}}","result":"EQUAL","target":"VALUE","value":"{{{B64("1")}}}"},
                        {"key":"{{{B64("txn/x")}}}","result":"GREATER","target":"VERSION","version":"0"}],
             "success":[{"request_put":{"key":"{{{B64("txn/x")}}}","value":"{{{B64("2")}}}","prev_kv":true}},
                        {"request_range":{"key":"{{{B64("txn/x")}}}"}}],
             "failure":[{"request_range":{"key":"{{{B64("txn/")}}}","range_end":"{{{B64("txn0")}}}"}},
                        {"request_delete_range":{"key":"{{{B64("txn/y")}}}"}}]}
            """;
        await t.PostAsync("/v3/kv/txn", txn); // succeeds
        await t.PostAsync("/v3/kv/txn", txn); // fails: the value is 2 now
        await t.PostAsync("/v3/kv/txn", $$$"""
            {"compare":[{"key":"{{{B64("txn/x")}}}","target":"MOD","result":"LESS","mod_revision":"{rev+100}"}],
             "success":[{"request_txn":{"success":[{"request_put":{"key":"{{{B64("txn/z")}}}","value":"{{{B64("n")}}}"}}]}}]}
            """);
        await t.PostAsync("/v3/kv/txn", $$$"""
            {"success":[{"request_put":{"key":"{{{B64("txn/d")}}}"}},{"request_put":{"key":"{{{B64("txn/d")}}}"}}]}
            """); // error: duplicate key
    }

    [Fact]
    public async Task Compaction()
    {
        var t = await StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("compact/k")}}}","value":"{{{B64(i.ToString(System.Globalization.CultureInfo.InvariantCulture))}}}"}""");
        }

        await t.PostAsync("/v3/kv/compaction", """{"revision":"{rev+2}","physical":true}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("compact/k")}}}","revision":"{rev+1}"}"""); // compacted
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("compact/k")}}}","revision":"{rev+2}"}""");
        await t.PostAsync("/v3/kv/compaction", """{"revision":"{rev+2}"}"""); // compacted again
        await t.PostAsync("/v3/kv/compaction", """{"revision":"{rev+1000}"}"""); // future revision
    }

    [Fact]
    public async Task Leases()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/lease/grant", """{"TTL":60,"ID":7001}""");
        await t.PostAsync("/v3/lease/grant", """{"TTL":60,"ID":7001}"""); // exists
        await t.PostAsync("/v3/lease/grant", """{"TTL":"120","ID":"7002"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("lease/a")}}}","value":"{{{B64("v")}}}","lease":7001}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("lease/b")}}}","value":"{{{B64("v")}}}","lease":"9999"}"""); // no such lease
        await t.PostAsync("/v3/lease/timetolive", """{"ID":7001,"keys":true}""", "TTL");
        await t.PostAsync("/v3/kv/lease/timetolive", """{"ID":7002}""", "TTL");
        await t.PostAsync("/v3/lease/leases", "{}");
        await t.PostAsync("/v3/kv/lease/leases", "{}");
        await t.StreamAsync("/v3/lease/keepalive", """{"ID":7001}""", lines: 1, expectEnd: true);
        await t.StreamAsync("/v3/lease/keepalive", """{"ID":7001}{"ID":"7002"}""", lines: 2, expectEnd: true);
        await t.StreamAsync("/v3/lease/keepalive", """{"ID":9999}""", lines: 1, expectEnd: true);
        await t.StreamAsync("/v3/lease/keepalive", string.Empty, lines: 0, expectEnd: true); // no request: the stream just ends
        await t.StreamAsync("/v3/lease/keepalive", """{"ID":7001}xyz""", lines: 1, expectEnd: true); // a bad later request ends the request stream
        await t.PostAsync("/v3/lease/keepalive", "xyz"); // a bad first request fails the call (code Unknown)
        await t.PostAsync("/v3/lease/revoke", """{"ID":7001}""");
        await t.PostAsync("/v3/lease/revoke", """{"ID":7001}"""); // not found
        await t.PostAsync("/v3/kv/lease/revoke", """{"ID":7002}""");
        await t.PostAsync("/v3/lease/timetolive", """{"ID":7001}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("lease/a")}}}"}""");
    }

    [Fact]
    public async Task WatchStreamsEvents()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("watch/k")}}}","value":"{{{B64("old")}}}"}""");
        var body = $$$"""{"create_request":{"key":"{{{B64("watch/")}}}","range_end":"{{{B64("watch0")}}}","prev_kv":true}}""";
        await using var etcd = await GatewayStream.OpenAsync(pair, pair.Etcd.Endpoint, "/v3/watch", body);
        await using var arbiter = await GatewayStream.OpenAsync(pair, pair.Arbiter.Endpoint, "/v3/watch", body);
        Assert.Equal((etcd.Status, etcd.ContentType), (arbiter.Status, arbiter.ContentType));
        await t.CompareLinesAsync(etcd, arbiter, 1); // created
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("watch/k")}}}","value":"{{{B64("new")}}}"}""");
        await t.PostAsync("/v3/kv/deleterange", $$$"""{"key":"{{{B64("watch/k")}}}"}""");
        await t.CompareLinesAsync(etcd, arbiter, 2); // the put and the delete, with prev_kv
        await t.PostAsync("/v3/watch", "{\"create_request\":"); // a cut-off first request fails the call
    }

    [Fact]
    public async Task WatchFromCompactedRevision()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("wc/k")}}}","value":"{{{B64("1")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("wc/k")}}}","value":"{{{B64("2")}}}"}""");
        await t.PostAsync("/v3/kv/compaction", """{"revision":"{rev+2}"}""");
        await using var etcd = await GatewayStream.OpenAsync(pair, pair.Etcd.Endpoint, "/v3/watch", t.Etcd.Request($$$"""{"create_request":{"key":"{{{B64("wc/k")}}}","start_revision":"{rev+1}"}}"""));
        await using var arbiter = await GatewayStream.OpenAsync(pair, pair.Arbiter.Endpoint, "/v3/watch", t.Arbiter.Request($$$"""{"create_request":{"key":"{{{B64("wc/k")}}}","start_revision":"{rev+1}"}}"""));
        await t.CompareLinesAsync(etcd, arbiter, 2); // created, then canceled with compact_revision
    }

    [Fact]
    public async Task LockAndUnlock()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/lease/grant", """{"TTL":60,"ID":7101}""");
        await t.PostAsync("/v3/lock/lock", $$$"""{"name":"{{{B64("lock/m")}}}","lease":7101}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("lock/m")}}}","range_end":"{{{B64("lock/n")}}}"}""");
        await t.PostAsync("/v3/lock/unlock", $$$"""{"key":"{{{B64("lock/m/1bbd")}}}"}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("lock/m")}}}","range_end":"{{{B64("lock/n")}}}","count_only":true}""");
        await t.PostAsync("/v3/lock/lock", $$$"""{"name":"{{{B64("lock/m")}}}","lease":9998}"""); // no such lease
        await t.PostAsync("/v3/lease/revoke", """{"ID":7101}""");
    }

    [Fact]
    public async Task Election()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/lease/grant", """{"TTL":60,"ID":7201}""");
        await t.PostAsync("/v3/election/leader", $$$"""{"name":"{{{B64("elect/e")}}}"}"""); // no leader yet
        await t.PostAsync("/v3/election/campaign", $$$"""{"name":"{{{B64("elect/e")}}}","value":"{{{B64("v1")}}}","lease":7201}""");
        await t.PostAsync("/v3/election/leader", $$$"""{"name":"{{{B64("elect/e")}}}"}""");
        await using (var etcdObserver = await GatewayStream.OpenAsync(pair, pair.Etcd.Endpoint, "/v3/election/observe", $$$"""{"name":"{{{B64("elect/e")}}}"}"""))
        await using (var arbiterObserver = await GatewayStream.OpenAsync(pair, pair.Arbiter.Endpoint, "/v3/election/observe", $$$"""{"name":"{{{B64("elect/e")}}}"}"""))
        {
            await t.CompareLinesAsync(etcdObserver, arbiterObserver, 1); // the current leader
        }

        await t.PostAsync("/v3/election/proclaim", $$$"""{"leader":{"name":"{{{B64("elect/e")}}}","key":"{{{B64("elect/e/1c21")}}}","rev":"{rev+1}","lease":7201},"value":"{{{B64("v2")}}}"}""");
        await t.PostAsync("/v3/election/leader", $$$"""{"name":"{{{B64("elect/e")}}}"}""");
        await t.PostAsync("/v3/election/resign", $$$"""{"leader":{"name":"{{{B64("elect/e")}}}","key":"{{{B64("elect/e/1c21")}}}","rev":"{rev+1}","lease":7201}}""");
        await t.PostAsync("/v3/election/leader", $$$"""{"name":"{{{B64("elect/e")}}}"}""");
        await t.PostAsync("/v3/election/resign", "{}"); // no leader named
        await t.PostAsync("/v3/election/campaign", $$$"""{"name":"{{{B64("elect/f")}}}","value":"{{{B64("v1")}}}","lease":9997}"""); // no such lease
        await t.PostAsync("/v3/lease/revoke", """{"ID":7201}""");
    }

    [Fact]
    public async Task ClusterAndMaintenance()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/cluster/member/list", "{}", "ID", "name");
        await t.PostAsync("/v3/maintenance/status", "{}", "version");
        await t.PostAsync("/v3/maintenance/alarm", "{}");
        await t.PostAsync("/v3/maintenance/hash", "{}");
    }

    [Fact]
    public async Task VersionAndHealth()
    {
        var t = await StartAsync();
        await t.SendAsync(HttpMethod.Get, "/version", null);
        await t.SendAsync(HttpMethod.Get, "/health", null);
    }

    [Fact]
    public async Task BadRequestsAndUnknownPaths()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3/kv/range", """{"key": """); // cut off
        await t.PostAsync("/v3/kv/range", "xyz"); // not JSON
        await t.PostAsync("/v3/kv/range", "{}"); // no key
        await t.PostAsync("/v3/kv/range", string.Empty); // empty body: the empty request
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("bad/k")}}}","no_such_field":1}"""); // unknown fields are ignored
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("bad/k")}}}","value":"{{{B64("v")}}}","lease":"12345"}"""); // lease not found
        await t.PostAsync("/v3/kv/nope", "{}");
        await t.PostAsync("/v3/nope", "{}");
        await t.PostAsync("/v3alpha/kv/range", $$$"""{"key":"{{{B64("bad/k")}}}"}""");
        await t.SendAsync(HttpMethod.Get, "/v3/kv/range", null);
        await t.SendAsync(HttpMethod.Options, "/v3/kv/range", null);
    }

    [Fact]
    public async Task OlderPrefixes()
    {
        var t = await StartAsync();
        await t.PostAsync("/v3beta/kv/put", $$$"""{"key":"{{{B64("beta/k")}}}","value":"{{{B64("v")}}}"}""");
        await t.PostAsync("/v3beta/kv/range", $$$"""{"key":"{{{B64("beta/k")}}}"}""");
        await t.PostAsync("/v3beta/lease/grant", """{"TTL":60,"ID":7301}""");
        await t.PostAsync("/v3beta/kv/lease/revoke", """{"ID":7301}""");
        await t.PostAsync("/v3beta/maintenance/status", "{}", "version");
        await t.PostAsync("/v3beta/nope", "{}");
        await t.PostAsync("/v3alpha/kv/put", $$$"""{"key":"{{{B64("beta/k")}}}","value":"{{{B64("v")}}}"}""");
        await t.PostAsync("/v3alpha/lease/grant", """{"TTL":60}""");
    }

    /// <summary>etcd's documented curl call (etcd's gateway docs), with a plain curl over HTTP/1.1 against both servers.</summary>
    [Fact]
    public async Task PlainCurl()
    {
        var t = await StartAsync();
        var put = await t.CurlBothAsync("-L", "/v3/kv/put", "-X", "POST", "-d", """{"key": "Zm9v", "value": "YmFy"}""");
        Assert.Contains("\"revision\":", put, StringComparison.Ordinal);
        var range = await t.CurlBothAsync("-L", "/v3/kv/range", "-X", "POST", "-d", """{"key": "Zm9v"}""");
        Assert.Contains("\"value\":\"YmFy\"", range, StringComparison.Ordinal);
        await t.CurlBothAsync("/version");
    }

    /// <summary>The gateway over h2c (HTTP/2 without TLS, prior knowledge) on Arbiter's client port answers as over HTTP/1.1.</summary>
    [Fact]
    public async Task ArbiterServesTheGatewayOverH2c()
    {
        var t = await StartAsync();
        var body = $$$"""{"key":"{{{B64("h2c/k")}}}"}""";
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("h2c/k")}}}","value":"{{{B64("v")}}}"}""");
        using var h2c = new HttpClient
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using var response = await h2c.PostAsync(pair.Arbiter.Endpoint + "/v3/kv/range", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpVersion.Version20, response.Version);
        var overH2c = await response.Content.ReadAsStringAsync();
        var overHttp11 = await pair.SendAsync(pair.Arbiter.Endpoint, HttpMethod.Post, "/v3/kv/range", body);
        output.WriteLine($"h2c: {overH2c}\nhttp/1.1: {overHttp11.Body}");
        Assert.Equal(overHttp11.Body, overH2c);
        Assert.Contains("\"count\":\"1\"", overH2c, StringComparison.Ordinal);
    }

    /// <summary><c>Grpc-Metadata-&lt;key&gt;</c> headers reach the call as metadata (here Arbiter's consistency level, which etcd does not have).</summary>
    [Fact]
    public async Task ArbiterPassesGrpcMetadataHeaders()
    {
        var body = $$$"""{"key":"{{{B64("meta/k")}}}"}""";
        async Task<GatewayReply> RangeWithLevelAsync(string level)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, pair.Arbiter.Endpoint + "/v3/kv/range") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Add("Grpc-Metadata-Arbiter-Consistency", level);
            using var response = await pair.Http.SendAsync(request);
            return new GatewayReply((int)response.StatusCode, response.Content.Headers.ContentType?.ToString() ?? string.Empty, await response.Content.ReadAsStringAsync());
        }

        var refused = await RangeWithLevelAsync("no-such-level");
        output.WriteLine(refused.ToString());
        Assert.Equal(400, refused.Status);
        Assert.Contains("\"code\":3", refused.Body, StringComparison.Ordinal);
        Assert.Contains("arbiter: invalid consistency level", refused.Body, StringComparison.Ordinal);
        var served = await RangeWithLevelAsync("serializable");
        Assert.Equal(200, served.Status);
    }

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private Task<GatewayExchange> StartAsync() => GatewayExchange.StartAsync(pair, output);
}

/// <summary>A streaming gateway call (watch, keep-alive) read line by line.</summary>
public sealed class GatewayStream : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;
    private readonly CancellationTokenSource _call;

    private GatewayStream(HttpResponseMessage response, StreamReader reader, CancellationTokenSource call)
    {
        _response = response;
        _reader = reader;
        _call = call;
    }

    public int Status => (int)_response.StatusCode;

    public string ContentType => _response.Content.Headers.ContentType?.ToString() ?? string.Empty;

    public static async Task<GatewayStream> OpenAsync(GatewayPair pair, string endpoint, string path, string body)
    {
        var call = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint + path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        var response = await pair.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, call.Token);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(call.Token), Encoding.UTF8);
        return new GatewayStream(response, reader, call);
    }

    /// <summary>The next line, or null at the end of the stream; fails when none comes within <paramref name="timeout"/>.</summary>
    public async Task<string?> ReadLineAsync(TimeSpan timeout)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_call.Token);
        deadline.CancelAfter(timeout);
        string? line;
        do
        {
            line = await _reader.ReadLineAsync(deadline.Token);
        }
        while (line is { Length: 0 });
        return line;
    }

    public async ValueTask DisposeAsync()
    {
        await _call.CancelAsync();
        _reader.Dispose();
        _response.Dispose();
        _call.Dispose();
    }
}
