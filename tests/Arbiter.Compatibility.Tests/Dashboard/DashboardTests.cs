using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Lock;
using Google.Protobuf;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Dashboard;

/// <summary>
/// The web dashboard of a real <c>arbiter serve</c>, in Debian's chromium (headless): the page
/// loads and shows the leader; a lock held by one client and awaited by another appears with its
/// holder, fencing token and waiter, passes to the waiter and disappears after release; a key's
/// history grows as it is written — all observed live by the page's own polling, never reloaded.
/// </summary>
[Trait("Category", "Dashboard")]
public sealed class DashboardTests(ITestOutputHelper output)
{
    // Set after load; still there at the end means the page was never reloaded.
    private const string MarkPage = "() => { window.__arbiterNoReload = 'still-here'; }";
    private const string ReadMark = "() => window.__arbiterNoReload || 'reloaded'";

    [Fact]
    public async Task LockWithWaiterAppearsWhileHeldAndDisappearsAfterRelease()
    {
        await OnServerAsync("dash-lock", async server =>
        {
            using var channel = GrpcChannel.ForAddress(server.Endpoint);
            var leases = new Lease.LeaseClient(channel);
            var locks = new Arbiter.Protocol.Lock.Lock.LockClient(channel);
            var kv = new KV.KVClient(channel);
            var name = ByteString.CopyFromUtf8("locks/orders");
            var holderLease = (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
            var waiterLease = (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;

            await using var browser = await DashboardBrowser.OpenAsync(server.Endpoint + "/ui/");
            await browser.WaitForAsync("the leader", "(name) => document.getElementById('leader').textContent === name", server.Name);
            await browser.Page.EvaluateAsync(MarkPage);

            var held = await locks.LockAsync(new LockRequest { Name = name, Lease = holderLease });
            var holderToken = await CreateRevisionAsync(kv, held.Key);
            using var waiting = locks.LockAsync(new LockRequest { Name = name, Lease = waiterLease });
            var waiterKey = $"locks/orders/{waiterLease:x}";
            var waiterToken = await WaitForCreateRevisionAsync(kv, waiterKey);

            await browser.WaitForAsync(
                $"lock locks/orders held by {held.Key.ToStringUtf8()} (token {holderToken}) with waiter {waiterKey}",
                LockRowIs,
                new { name = "locks/orders", holder = held.Key.ToStringUtf8(), token = holderToken.ToString(), waiters = new[] { $"{waiterKey} (lease {waiterLease:x}, token {waiterToken})" } });
            Assert.False(waiting.ResponseAsync.IsCompleted, "the waiter was granted the lock while it was held");

            // For the screenshot (docs/images/dashboard.png): an election and a watch beside the lock.
            var elections = new Arbiter.Protocol.Election.Election.ElectionClient(channel);
            var candidateLease = (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 })).ID;
            await elections.CampaignAsync(new Arbiter.Protocol.Election.CampaignRequest { Name = ByteString.CopyFromUtf8("elections/scheduler"), Lease = candidateLease, Value = ByteString.CopyFromUtf8("node-a") });
            using var watch = new Watch.WatchClient(channel).Watch();
            await watch.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFromUtf8("locks/"), RangeEnd = ByteString.CopyFromUtf8("locks0") } });
            await browser.WaitForAsync("the election and the watch", "() => !!document.querySelector('tr[data-election=\"elections/scheduler\"]') && document.querySelectorAll('#watches tbody tr').length > 0");
            await browser.ScreenshotAsync("dashboard.png", fullPage: true);

            // Release: the waiter gets it (its own create revision is its fencing token), then releases too.
            await locks.UnlockAsync(new UnlockRequest { Key = held.Key });
            var next = await waiting.ResponseAsync;
            Assert.Equal(waiterKey, next.Key.ToStringUtf8());
            await browser.WaitForAsync(
                $"lock locks/orders passed to {waiterKey} (token {waiterToken}) with no waiter",
                LockRowIs,
                new { name = "locks/orders", holder = waiterKey, token = waiterToken.ToString(), waiters = Array.Empty<string>() });
            await locks.UnlockAsync(new UnlockRequest { Key = next.Key });
            await browser.WaitForAsync("no lock locks/orders", "() => !document.querySelector('tr[data-lock=\"locks/orders\"]') && !document.getElementById('locks-empty').hidden");

            Assert.Equal("still-here", await browser.Page.EvaluateAsync<string>(ReadMark));
        });
    }

    [Fact]
    public async Task KeyPutAppearsInTheKeysBrowserWithItsHistory()
    {
        await OnServerAsync("dash-keys", async server =>
        {
            using var channel = GrpcChannel.ForAddress(server.Endpoint);
            var kv = new KV.KVClient(channel);
            var key = ByteString.CopyFromUtf8("app/config/mode");
            var first = (await kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("blue") })).Header.Revision;
            var second = (await kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("green") })).Header.Revision;
            await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("app/config/replicas"), Value = ByteString.CopyFromUtf8("3") });

            await using var browser = await DashboardBrowser.OpenAsync(server.Endpoint + "/ui/");
            await browser.Page.EvaluateAsync(MarkPage);

            // Prefix navigation: app/ → app/config/ → the key → its history.
            await browser.Page.ClickAsync("li[data-folder=\"app/\"] a");
            await browser.Page.ClickAsync("li[data-folder=\"app/config/\"] a");
            await browser.Page.ClickAsync("tr[data-key=\"app/config/mode\"] a");
            await browser.WaitForAsync($"the history of app/config/mode: green@{second}, blue@{first}", HistoryIs, new[] { $"{second} PUT green", $"{first} PUT blue" });

            // Written while the page is open: the value and the history follow without a reload.
            var third = (await kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("red") })).Header.Revision;
            await browser.WaitForAsync("the new value red in the key list", "() => document.querySelector('tr[data-key=\"app/config/mode\"] .value')?.textContent === 'red'");
            await browser.WaitForAsync($"red@{third} on top of the history", HistoryIs, new[] { $"{third} PUT red", $"{second} PUT green", $"{first} PUT blue" });
            await browser.ScreenshotAsync("dashboard-keys.png", fullPage: true);

            var deleted = (await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = key })).Header.Revision;
            await browser.WaitForAsync($"the deletion at {deleted} on top of the history", HistoryIs, new[] { $"{deleted} DELETE ", $"{third} PUT red", $"{second} PUT green", $"{first} PUT blue" });
            await browser.WaitForAsync("app/config/mode gone from the key list", "() => !document.querySelector('tr[data-key=\"app/config/mode\"]')");

            Assert.Equal("still-here", await browser.Page.EvaluateAsync<string>(ReadMark));
        });
    }

    [Fact]
    public async Task ClusterPageShowsTheLeaderAndThreeMembers()
    {
        await using var cluster = await ArbiterCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        var follower = cluster.Running.First(m => m != leader);
        try
        {
            // Served by a follower: it names the leader it follows. Under heavy load an election
            // may move leadership meanwhile: then the page must follow, to the new agreed leader.
            await using var browser = await DashboardBrowser.OpenAsync(follower.Endpoint + "/ui/");
            var deadline = DateTime.UtcNow + (2 * DashboardBrowser.WaitTimeout);
            while (true)
            {
                try
                {
                    await browser.WaitForAsync(
                        $"three members with {leader.Name} as leader",
                        """
                        (a) => {
                          const rows = [...document.querySelectorAll('#members tbody tr')];
                          const leaders = rows.filter(r => r.classList.contains('leader')).map(r => r.dataset.member);
                          return rows.length === 3 && leaders.length === 1 && leaders[0] === a.leader
                            && document.getElementById('leader').textContent === a.leader
                            && a.names.every(n => rows.some(r => r.dataset.member === n));
                        }
                        """,
                        new { leader = leader.Name, names = cluster.Members.Select(m => m.Name).ToArray() },
                        TimeSpan.FromSeconds(15));
                    break;
                }
                catch (TimeoutException) when (DateTime.UtcNow < deadline)
                {
                    var now = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
                    output.WriteLine(now == leader
                        ? $"the page does not show {leader.Name} yet; waiting on"
                        : $"leadership moved from {leader.Name} to {now.Name} during the test; waiting for the page to show {now.Name}");
                    leader = now;
                }
            }

            await browser.ScreenshotAsync("dashboard-cluster.png");
        }
        catch
        {
            output.WriteLine(cluster.Logs);
            throw;
        }
    }

    [Fact]
    public async Task WithAuthOnTheApiNeedsARootTokenAndThePageSignsIn()
    {
        await OnServerAsync("dash-auth", async server =>
        {
            using var channel = GrpcChannel.ForAddress(server.Endpoint);
            var auth = new Arbiter.Protocol.Etcd.Auth.AuthClient(channel);
            await new KV.KVClient(channel).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("secret/plan"), Value = ByteString.CopyFromUtf8("x") });
            await auth.RoleAddAsync(new AuthRoleAddRequest { Name = "root" });
            await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "rootpw" });
            await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" });
            await auth.UserAddAsync(new AuthUserAddRequest { Name = "alice", Password = "alicepw" });
            await auth.AuthEnableAsync(new AuthEnableRequest());

            using var http = new HttpClient { BaseAddress = new Uri(server.Endpoint) };
            foreach (var path in new[] { "cluster", "keys", "key?key=" + Convert.ToBase64String("secret/plan"u8), "leases", "locks", "watches" })
            {
                using var anonymous = await http.GetAsync("/ui/api/" + path);
                var body = await anonymous.Content.ReadAsStringAsync();
                Assert.True(anonymous.StatusCode == HttpStatusCode.Unauthorized, $"/ui/api/{path} without a token: {anonymous.StatusCode} {body}");
                Assert.DoesNotContain("secret", body, StringComparison.Ordinal);

                using var forged = new HttpRequestMessage(HttpMethod.Get, "/ui/api/" + path) { Headers = { { "Authorization", "forged.1" } } };
                using var forgedAnswer = await http.SendAsync(forged);
                Assert.Equal(HttpStatusCode.Unauthorized, forgedAnswer.StatusCode);
            }

            using (var asAlice = new HttpRequestMessage(HttpMethod.Get, "/ui/api/keys") { Headers = { { "Authorization", await TokenAsync(http, "alice", "alicepw") } } })
            using (var aliceAnswer = await http.SendAsync(asAlice))
            {
                Assert.Equal(HttpStatusCode.Forbidden, aliceAnswer.StatusCode);
                Assert.DoesNotContain("secret", await aliceAnswer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            using (var asRoot = new HttpRequestMessage(HttpMethod.Get, "/ui/api/keys") { Headers = { { "Authorization", await TokenAsync(http, "root", "rootpw") } } })
            using (var rootAnswer = await http.SendAsync(asRoot))
            {
                Assert.Equal(HttpStatusCode.OK, rootAnswer.StatusCode);
                Assert.Contains("secret/", await rootAnswer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            // The browser: a sign-in form and no data; a wrong password is refused; root gets in.
            await using var browser = await DashboardBrowser.OpenAsync(server.Endpoint + "/ui/");
            await browser.WaitForAsync("the sign-in form", "() => !document.getElementById('login').hidden && document.getElementById('content').hidden");
            Assert.DoesNotContain("secret", await browser.Page.ContentAsync(), StringComparison.Ordinal);
            await browser.Page.FillAsync("#login-user", "root");
            await browser.Page.FillAsync("#login-password", "wrong");
            await browser.Page.ClickAsync("#login button[type=submit]");
            await browser.WaitForAsync("a refused sign-in", "() => document.getElementById('login-error').textContent.length > 0 && document.getElementById('content').hidden");
            await browser.Page.FillAsync("#login-password", "rootpw");
            await browser.Page.ClickAsync("#login button[type=submit]");
            await browser.WaitForAsync("the keys after signing in as root", "() => !!document.querySelector('li[data-folder=\"secret/\"]')");
        });
    }

    private const string LockRowIs =
        """
        (a) => {
          const row = [...document.querySelectorAll('#locks tbody tr')].find(r => r.dataset.lock === a.name);
          if (!row) return false;
          const waiters = [...row.querySelectorAll('.waiter')].map(w => w.textContent);
          return row.querySelector('.holder').textContent === a.holder
            && row.querySelector('.fencing-token').textContent === a.token
            && waiters.length === a.waiters.length && a.waiters.every((w, i) => waiters[i] === w);
        }
        """;

    private const string HistoryIs =
        """
        (expected) => {
          const rows = [...document.querySelectorAll('#history tbody tr')]
            .map(r => [...r.children].map(c => c.textContent))
            .map(c => `${c[0]} ${c[1]} ${c[4]}`);
          return !document.getElementById('history-panel').hidden
            && rows.length === expected.length && expected.every((e, i) => rows[i] === e);
        }
        """;

    /// <summary>Runs <paramref name="body"/> against a fresh <c>arbiter serve</c>; on failure prints its log.</summary>
    private async Task OnServerAsync(string name, Func<ArbiterProcess, Task> body)
    {
        await using var server = new ArbiterProcess(name);
        await server.StartAsync();
        try
        {
            await body(server);
        }
        catch
        {
            output.WriteLine($"=== server log of {server.Name} at {server.Endpoint} ===");
            output.WriteLine(server.Log);
            throw;
        }
    }

    private static async Task<string> TokenAsync(HttpClient http, string name, string password)
    {
        using var answer = await http.PostAsJsonAsync("/v3/auth/authenticate", new { name, password });
        answer.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await answer.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("token").GetString()!;
    }

    private static async Task<long> CreateRevisionAsync(KV.KVClient kv, ByteString key) =>
        (await kv.RangeAsync(new RangeRequest { Key = key })).Kvs.Single().CreateRevision;

    /// <summary>The create revision of <paramref name="key"/> once it exists (the waiter's key is put by its Lock call).</summary>
    private static async Task<long> WaitForCreateRevisionAsync(KV.KVClient kv, string key)
    {
        var deadline = DateTime.UtcNow + DashboardBrowser.WaitTimeout;
        while (true)
        {
            var found = await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) });
            if (found.Kvs.Count == 1)
            {
                return found.Kvs[0].CreateRevision;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{key} was not created within {DashboardBrowser.WaitTimeout.TotalSeconds} s");
            }

            await Task.Delay(50);
        }
    }
}
