using System.Text;
using System.Text.Json.Nodes;

namespace Arbiter.Compatibility.Tests.Gateway;

/// <summary>
/// The JSON gateway's <c>/v3/auth/*</c> against a real etcd 3.4's, differentially: users, roles and
/// permissions managed over HTTP, auth enabled, then KV, lease and maintenance calls with no token,
/// a made-up token, a limited user's token and root's (each server's own token, raw in
/// <c>Authorization</c> as etcd's gateway reads it): the same status codes, media types and bodies
/// after masking ids, revisions and tokens. Its own pair of servers (auth changes a server for good).
/// </summary>
[Trait("Target", "Arbiter")]
public sealed class GatewayAuthDifferentialTests(GatewayPair pair, ITestOutputHelper output) : IClassFixture<GatewayPair>
{
    /// <summary>Simple tokens differ between any two servers.</summary>
    private const string Token = "token";

    private const string MadeUpToken = "abcdefghijklmnop.1";

    [Fact]
    public async Task AuthEndpointsAndTokensInTheAuthorizationHeaderAsOnEtcd()
    {
        var t = await GatewayExchange.StartAsync(pair, output);

        // Users and roles, auth still off (anyone may manage them).
        await t.PostAsync("/v3/auth/enable", "{}"); // no root user yet
        await t.PostAsync("/v3/auth/user/add", """{"name":"root","password":"pw"}""");
        await t.PostAsync("/v3/auth/user/add", """{"name":"root","password":"pw"}"""); // exists
        await t.PostAsync("/v3/auth/user/add", """{"name":"","password":"pw"}"""); // empty name
        await t.PostAsync("/v3/auth/enable", "{}"); // root has no root role yet
        await t.PostAsync("/v3/auth/role/add", """{"name":"root"}""");
        await t.PostAsync("/v3/auth/user/grant", """{"user":"root","role":"root"}""");
        await t.PostAsync("/v3/auth/role/add", """{"name":"app"}""");
        await t.PostAsync("/v3/auth/role/add", """{"name":"app"}"""); // exists
        await t.PostAsync("/v3/auth/role/grant", $$$"""{"name":"app","perm":{"permType":"READWRITE","key":"{{{B64("app/")}}}","range_end":"{{{B64("app0")}}}"}}""");
        await t.PostAsync("/v3/auth/role/grant", $$$"""{"name":"app","perm":{"permType":1,"key":"{{{B64("shared")}}}"}}"""); // WRITE on one key, the enum as a number
        await t.PostAsync("/v3/auth/role/grant", $$$"""{"name":"app","perm":{"key":"{{{B64("pub/")}}}","rangeEnd":"{{{B64("pub0")}}}"}}"""); // READ (the default)
        await t.PostAsync("/v3/auth/role/grant", $$$"""{"name":"nosuch","perm":{"key":"{{{B64("x")}}}"}}""");
        await t.PostAsync("/v3/auth/role/get", """{"role":"app"}""");
        await t.PostAsync("/v3/auth/role/get", """{"role":"nosuch"}""");
        await t.PostAsync("/v3/auth/role/add", """{"name":"tmp"}""");
        await t.PostAsync("/v3/auth/role/grant", $$$"""{"name":"tmp","perm":{"key":"{{{B64("x")}}}"}}""");
        await t.PostAsync("/v3/auth/role/revoke", $$$"""{"role":"tmp","key":"{{{B64("x")}}}"}""");
        await t.PostAsync("/v3/auth/role/revoke", $$$"""{"role":"tmp","key":"{{{B64("x")}}}"}"""); // no longer granted
        await t.PostAsync("/v3/auth/role/delete", """{"role":"tmp"}""");
        await t.PostAsync("/v3/auth/role/delete", """{"role":"tmp"}"""); // gone
        await t.PostAsync("/v3/auth/role/list", "{}");
        await t.PostAsync("/v3/auth/user/add", """{"name":"alice","password":"apw"}""");
        await t.PostAsync("/v3/auth/user/add", """{"name":"bob","password":"bpw"}""");
        await t.PostAsync("/v3/auth/user/grant", """{"user":"alice","role":"app"}""");
        await t.PostAsync("/v3/auth/user/grant", """{"user":"alice","role":"nosuch"}""");
        await t.PostAsync("/v3/auth/user/grant", """{"user":"nosuch","role":"app"}""");
        await t.PostAsync("/v3/auth/user/get", """{"name":"alice"}""");
        await t.PostAsync("/v3/auth/user/get", """{"name":"nosuch"}""");
        await t.PostAsync("/v3/auth/user/changepw", """{"name":"bob","password":"bpw2"}""");
        await t.PostAsync("/v3/auth/user/changepw", """{"name":"nosuch","password":"x"}""");
        await t.PostAsync("/v3/auth/user/revoke", """{"name":"bob","role":"app"}"""); // not granted
        await t.PostAsync("/v3/auth/user/grant", """{"user":"bob","role":"app"}""");
        await t.PostAsync("/v3/auth/user/revoke", """{"name":"bob","role":"app"}""");
        await t.PostAsync("/v3/auth/user/list", "{}");
        await t.PostAsync("/v3/auth/user/delete", """{"name":"bob"}""");
        await t.PostAsync("/v3/auth/user/delete", """{"name":"bob"}"""); // gone
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("app/k")}}}","value":"{{{B64("v")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("other")}}}","value":"{{{B64("v")}}}"}""");
        await t.PostAsync("/v3/auth/enable", "{}");
        await t.PostAsync("/v3/auth/enable", "{}"); // already on

        // Authenticate: wrong password, unknown user, empty name, then the two tokens.
        await t.PostAsync("/v3/auth/authenticate", """{"name":"root","password":"wrong"}""");
        await t.PostAsync("/v3/auth/authenticate", """{"name":"nosuch","password":"pw"}""");
        await t.PostAsync("/v3/auth/authenticate", """{"name":"","password":"pw"}""");
        var root = await t.PostAsync("/v3/auth/authenticate", """{"name":"root","password":"pw"}""", Token);
        var alice = await t.PostAsync("/v3/auth/authenticate", """{"name":"alice","password":"apw"}""", Token);

        // No token: refused where etcd refuses.
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("app/k")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("app/k")}}}","value":"{{{B64("x")}}}"}""");
        await t.PostAsync("/v3/auth/user/list", "{}");
        await t.PostAsync("/v3/auth/disable", "{}");
        await t.PostAsync("/v3/lease/grant", """{"TTL":60,"ID":7401}"""); // needs nothing (etcd 3.4)
        await t.PostAsync("/v3/maintenance/status", "{}", "version");
        await t.PostAsync("/v3/maintenance/hash", "{}");

        // A made-up token.
        t.UseTokens(MadeUpToken, MadeUpToken);
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("app/k")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("app/k")}}}","value":"{{{B64("x")}}}"}""");
        await t.PostAsync("/v3/auth/user/get", """{"name":"alice"}""");

        // alice: READWRITE on app/, WRITE on shared, READ on pub/.
        t.UseTokens(TokenOf(alice.Etcd), TokenOf(alice.Arbiter));
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("app/k")}}}"}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("app/")}}}","range_end":"{{{B64("app0")}}}"}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("other")}}}"}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("pub/x")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("app/x")}}}","value":"{{{B64("a")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("app/x")}}}","value":"{{{B64("b")}}}","prev_kv":true}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("shared")}}}","value":"{{{B64("w")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("shared")}}}","value":"{{{B64("w")}}}","prev_kv":true}"""); // prev_kv needs READ too
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("pub/x")}}}","value":"{{{B64("w")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("other")}}}","value":"{{{B64("x")}}}"}""");
        await t.PostAsync("/v3/kv/deleterange", $$$"""{"key":"{{{B64("other")}}}"}""");
        await t.PostAsync("/v3/kv/deleterange", $$$"""{"key":"{{{B64("app/x")}}}"}""");
        await t.PostAsync("/v3/kv/txn", $$$"""
            {"compare":[{"key":"{{{B64("app/k")}}}","target":"VERSION","result":"GREATER","version":"0"}],
             "success":[{"request_put":{"key":"{{{B64("app/t")}}}","value":"{{{B64("yes")}}}"}}],
             "failure":[{"request_put":{"key":"{{{B64("app/t")}}}","value":"{{{B64("no")}}}"}}]}
            """);
        await t.PostAsync("/v3/kv/txn", $$$"""
            {"compare":[{"key":"{{{B64("app/k")}}}","target":"VERSION","result":"GREATER","version":"0"}],
             "success":[{"request_range":{"key":"{{{B64("app/k")}}}"}}],
             "failure":[{"request_put":{"key":"{{{B64("other")}}}","value":"{{{B64("no")}}}"}}]}
            """); // a denied op in the branch not taken is still denied
        await t.PostAsync("/v3/kv/compaction", """{"revision":"{rev+1}"}""");
        await t.PostAsync("/v3/lease/revoke", """{"ID":7401}"""); // no keys attached
        await t.PostAsync("/v3/auth/user/get", """{"name":"alice"}""");
        await t.PostAsync("/v3/auth/user/get", """{"name":"root"}""");
        await t.PostAsync("/v3/auth/role/get", """{"role":"app"}""");
        await t.PostAsync("/v3/auth/role/get", """{"role":"root"}""");
        await t.PostAsync("/v3/auth/user/list", "{}");
        await t.PostAsync("/v3/auth/role/list", "{}");
        await t.PostAsync("/v3/auth/user/add", """{"name":"mallory","password":"x"}""");
        await t.PostAsync("/v3/auth/role/grant", $$$"""{"name":"app","perm":{"permType":"READWRITE","key":"{{{B64("other")}}}"}}""");
        await t.PostAsync("/v3/auth/user/changepw", """{"name":"alice","password":"mine"}""");
        await t.PostAsync("/v3/auth/disable", "{}");
        await t.PostAsync("/v3/maintenance/hash", "{}");

        // root: everything.
        t.UseTokens(TokenOf(root.Etcd), TokenOf(root.Arbiter));
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("other")}}}"}""");
        await t.PostAsync("/v3/kv/put", $$$"""{"key":"{{{B64("other")}}}","value":"{{{B64("root")}}}"}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("\0")}}}","range_end":"{{{B64("\0")}}}","keys_only":true}""");
        await t.PostAsync("/v3/maintenance/hash", "{}");
        await t.PostAsync("/v3/auth/user/list", "{}");
        await t.PostAsync("/v3/auth/role/list", "{}");
        await t.PostAsync("/v3/auth/user/get", """{"name":"alice"}""");
        await t.PostAsync("/v3/auth/user/delete", """{"name":"root"}"""); // root rules
        await t.PostAsync("/v3/auth/user/revoke", """{"name":"root","role":"root"}""");
        await t.PostAsync("/v3/auth/role/delete", """{"role":"root"}""");
        await t.PostAsync("/v3/auth/role/revoke", $$$"""{"role":"app","key":"{{{B64("pub/")}}}","range_end":"{{{B64("pub0")}}}"}""");
        await t.PostAsync("/v3/auth/user/changepw", """{"name":"alice","password":"new"}""");

        // alice's token after her password changed.
        t.UseTokens(TokenOf(alice.Etcd), TokenOf(alice.Arbiter));
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("app/k")}}}"}""");
        t.UseTokens(null, null);
        await t.PostAsync("/v3/auth/authenticate", """{"name":"alice","password":"apw"}""");
        var again = await t.PostAsync("/v3/auth/authenticate", """{"name":"alice","password":"new"}""", Token);
        t.UseTokens(TokenOf(again.Etcd), TokenOf(again.Arbiter));
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("app/k")}}}"}""");
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("pub/x")}}}"}"""); // revoked

        // Auth off again: no token needed.
        t.UseTokens(TokenOf(root.Etcd), TokenOf(root.Arbiter));
        await t.PostAsync("/v3/auth/disable", "{}");
        t.UseTokens(null, null);
        await t.PostAsync("/v3/kv/range", $$$"""{"key":"{{{B64("other")}}}"}""");
        await t.PostAsync("/v3/auth/user/delete", """{"name":"root"}""");
        await t.PostAsync("/v3/auth/user/list", "{}");
    }

    /// <summary>
    /// <c>/v3/auth/status</c> is etcd 3.5's; etcd 3.4's gateway does not know the path (grpc-gateway's
    /// plain 404), Arbiter serves it, as it serves the RPC. The one intended difference, pinned here.
    /// </summary>
    [Fact]
    public async Task AuthStatusIsServedByArbiterOnly()
    {
        var etcd = await pair.SendAsync(pair.Etcd.Endpoint, HttpMethod.Post, "/v3/auth/status", "{}");
        var arbiter = await pair.SendAsync(pair.Arbiter.Endpoint, HttpMethod.Post, "/v3/auth/status", "{}");
        output.WriteLine($"etcd:    {etcd}\narbiter: {arbiter}");
        Assert.Equal(404, etcd.Status);
        Assert.Equal(200, arbiter.Status);
        Assert.NotNull(JsonNode.Parse(arbiter.Body)?["header"]);
    }

    private static string TokenOf(GatewayReply reply) =>
        JsonNode.Parse(reply.Body)?[Token]?.GetValue<string>() ?? throw new InvalidOperationException($"no token in {reply}");

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
}
