using System.Globalization;
using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// The real etcdctl against the target: output compared on keys/values and relative revisions only,
/// never on member/cluster ids or absolute revision numbers.
/// </summary>
public abstract class EtcdctlScenarios(ServerFixture target, ITestOutputHelper output) : ScenarioBase(target, output)
{
    private static readonly string[] DeleteKeys = ["x/1", "x/2", "y"];

    [Fact]
    public Task PutGetPrefixLimitKeysOnlyCountOnlyPrintValueOnly() => Guard(async () =>
    {
        foreach (var (key, value) in new[] { ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4") })
        {
            Assert.Equal("OK", (await Etcdctl.RunAsync("put", Prefix + key, value)).EnsureSuccess().Stdout.Trim());
        }

        var single = (await Etcdctl.RunAsync("get", Prefix + "b")).EnsureSuccess();
        Assert.Equal([Prefix + "b", "2"], single.Lines);

        var all = (await Etcdctl.RunAsync("get", "--prefix", Prefix)).EnsureSuccess();
        Assert.Equal([Prefix + "a", "1", Prefix + "b", "2", Prefix + "c", "3", Prefix + "d", "4"], all.Lines);

        var limited = (await Etcdctl.RunAsync("get", "--prefix", Prefix, "--limit=2", "-w", "json")).EnsureSuccess();
        Assert.Equal(["a", "b"], EtcdctlJson.Kvs(limited.Stdout).Select(kv => kv.Key[Prefix.Length..]));
        Assert.Equal(4, EtcdctlJson.Count(limited.Stdout));
        Assert.True(EtcdctlJson.More(limited.Stdout));

        var keysOnly = (await Etcdctl.RunAsync("get", "--prefix", Prefix, "--keys-only")).EnsureSuccess();
        Assert.Equal([Prefix + "a", Prefix + "b", Prefix + "c", Prefix + "d"], keysOnly.Lines);

        // etcdctl 3.4 has no --count-only (3.5 added it); count_only is covered over gRPC by the differential test.
        var fromKey = (await Etcdctl.RunAsync("get", "--from-key", Prefix + "c", "--keys-only", "--limit=2")).EnsureSuccess();
        Assert.Equal([Prefix + "c", Prefix + "d"], fromKey.Lines);

        var serializable = (await Etcdctl.RunAsync("get", Prefix + "a", "--consistency=s")).EnsureSuccess();
        Assert.Equal([Prefix + "a", "1"], serializable.Lines);

        var valuesOnly = (await Etcdctl.RunAsync("get", "--prefix", Prefix, "--print-value-only")).EnsureSuccess();
        Assert.Equal(["1", "2", "3", "4"], valuesOnly.Lines);

        var range = (await Etcdctl.RunAsync("get", Prefix + "b", Prefix + "d")).EnsureSuccess();
        Assert.Equal([Prefix + "b", "2", Prefix + "c", "3"], range.Lines);

        var missing = (await Etcdctl.RunAsync("get", Prefix + "zzz")).EnsureSuccess();
        Assert.Empty(missing.Lines);
    });

    [Theory]
    [InlineData("KEY", "abc")]
    [InlineData("VERSION", "acb")]
    [InlineData("CREATE", "bca")]
    [InlineData("MODIFY", "bac")]
    [InlineData("VALUE", "cab")]
    public Task GetSortByEachTargetInBothOrders(string sortBy, string ascending) => Guard(async () =>
    {
        // Chosen so that each sort target gives a different order: versions a1 c2 b3, creates b<c<a,
        // mods b<a<c, values c"1" < a"2" < b"3".
        foreach (var (key, value) in new[] { ("b", "3"), ("c", "1"), ("b", "3"), ("b", "3"), ("a", "2"), ("c", "1") })
        {
            (await Etcdctl.RunAsync("put", Prefix + key, value)).EnsureSuccess();
        }

        var up = (await Etcdctl.RunAsync("get", "--prefix", Prefix, "--keys-only", $"--sort-by={sortBy}", "--order=ASCEND")).EnsureSuccess();
        Assert.Equal(ascending.Select(c => Prefix + c), up.Lines);

        var down = (await Etcdctl.RunAsync("get", "--prefix", Prefix, "--keys-only", $"--sort-by={sortBy}", "--order=DESCEND")).EnsureSuccess();
        Assert.Equal(ascending.Reverse().Select(c => Prefix + c), down.Lines);
    });

    [Fact]
    public Task GetAtRevisionSeesHistoryAndJsonRevisionsAreConsistent() => Guard(async () =>
    {
        var key = Prefix + "k";
        var first = EtcdctlJson.HeaderRevision((await Etcdctl.RunAsync("put", key, "v1", "-w", "json")).EnsureSuccess().Stdout);
        var second = EtcdctlJson.HeaderRevision((await Etcdctl.RunAsync("put", key, "v2", "-w", "json")).EnsureSuccess().Stdout);
        Assert.Equal(first + 1, second);

        var old = (await Etcdctl.RunAsync("get", key, $"--rev={first}")).EnsureSuccess();
        Assert.Equal([key, "v1"], old.Lines);

        var now = (await Etcdctl.RunAsync("get", key, "-w", "json")).EnsureSuccess();
        var kv = Assert.Single(EtcdctlJson.Kvs(now.Stdout));
        Assert.Equal(("v2", first, second, 2L), (kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version));
        Assert.True(EtcdctlJson.HeaderRevision(now.Stdout) >= second);

        // Recreated after delete: version restarts at 1 with a new create revision.
        (await Etcdctl.RunAsync("del", key)).EnsureSuccess();
        var third = EtcdctlJson.HeaderRevision((await Etcdctl.RunAsync("put", key, "v3", "-w", "json")).EnsureSuccess().Stdout);
        var again = Assert.Single(EtcdctlJson.Kvs((await Etcdctl.RunAsync("get", key, "-w", "json")).EnsureSuccess().Stdout));
        Assert.Equal((third, third, 1L), (again.CreateRevision, again.ModRevision, again.Version));
        Assert.Equal(second + 2, third);
    });

    [Fact]
    public Task DeletePrefixWithPrevKv() => Guard(async () =>
    {
        foreach (var key in DeleteKeys)
        {
            (await Etcdctl.RunAsync("put", Prefix + key, "v-" + key)).EnsureSuccess();
        }

        var one = (await Etcdctl.RunAsync("del", Prefix + "y", "--prev-kv")).EnsureSuccess();
        Assert.Equal(["1", Prefix + "y", "v-y"], one.Lines);

        var many = (await Etcdctl.RunAsync("del", "--prefix", Prefix + "x/")).EnsureSuccess();
        Assert.Equal(["2"], many.Lines);

        var none = (await Etcdctl.RunAsync("del", Prefix + "nothing")).EnsureSuccess();
        Assert.Equal(["0"], none.Lines);

        Assert.Empty((await Etcdctl.RunAsync("get", "--prefix", Prefix)).EnsureSuccess().Lines);
    });

    [Fact]
    public Task PutFlagsAndDeleteFromKey() => Guard(async () =>
    {
        var key = Prefix + "p";
        (await Etcdctl.RunAsync("put", key, "v1")).EnsureSuccess();
        Assert.Equal(["OK", key, "v1"], (await Etcdctl.RunAsync("put", key, "v2", "--prev-kv")).EnsureSuccess().Lines);

        var lease = ParseLeaseId((await Etcdctl.RunAsync("lease", "grant", "600")).EnsureSuccess().Stdout);
        (await Etcdctl.RunAsync("put", key, "--ignore-value", $"--lease={lease}")).EnsureSuccess();
        var leased = Assert.Single(EtcdctlJson.Kvs((await Etcdctl.RunAsync("get", key, "-w", "json")).EnsureSuccess().Stdout));
        Assert.Equal(("v2", Convert.ToInt64(lease, 16)), (leased.Value, leased.Lease));

        (await Etcdctl.RunAsync("put", key, "v3", "--ignore-lease")).EnsureSuccess();
        var kept = Assert.Single(EtcdctlJson.Kvs((await Etcdctl.RunAsync("get", key, "-w", "json")).EnsureSuccess().Stdout));
        Assert.Equal(("v3", Convert.ToInt64(lease, 16)), (kept.Value, kept.Lease));

        var missing = await Etcdctl.RunAsync("put", Prefix + "missing", "--ignore-value");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("Error: etcdserver: key not found", missing.Stderr, StringComparison.Ordinal);

        (await Etcdctl.RunAsync("put", Prefix + "q", "v")).EnsureSuccess();
        (await Etcdctl.RunAsync("put", Prefix + "r", "v")).EnsureSuccess();
        // --from-key deletes every key >= the given one, including keys of other tests: bound it with a range end instead.
        Assert.Equal(["2"], (await Etcdctl.RunAsync("del", Prefix + "q", Prefix + "~")).EnsureSuccess().Lines);
        Assert.Equal($"lease {lease} revoked", (await Etcdctl.RunAsync("lease", "revoke", lease)).EnsureSuccess().Stdout.Trim());
        Assert.Empty((await Etcdctl.RunAsync("get", "--prefix", Prefix)).EnsureSuccess().Lines);
    });

    [Fact]
    public Task DefragAndAlarmList() => Guard(async () =>
    {
        var defrag = (await Etcdctl.RunAsync("defrag")).EnsureSuccess();
        Assert.Equal($"Finished defragmenting etcd member[{Target.Endpoint}]", defrag.Stdout.Trim());
        var alarms = (await Etcdctl.RunAsync("alarm", "list")).EnsureSuccess();
        Assert.Empty(alarms.Lines);
    });

    [Fact]
    public Task TxnInteractiveSuccessAndFailureBranches() => Guard(async () =>
    {
        var key = Prefix + "k";
        (await Etcdctl.RunAsync("put", key, "v1")).EnsureSuccess();

        // Sections are separated by blank lines; the final blank line ends the failure section.
        var success = (await Etcdctl.RunAsync(
            ["txn", "-i"],
            $"value(\"{key}\") = \"v1\"\nmod(\"{key}\") > \"0\"\n\nput {key} v2\nput {Prefix}other o\n\nput {key} failed\n\n",
            Deadline)).EnsureSuccess();
        Assert.Equal(["compares:", "success requests (get, put, del):", "failure requests (get, put, del):", "SUCCESS", "OK", "OK"], success.Lines);

        var failure = (await Etcdctl.RunAsync(
            ["txn", "-i"],
            $"value(\"{key}\") = \"v1\"\n\nput {key} wrong\n\nput {key} v3\nget {key}\n\n",
            Deadline)).EnsureSuccess();
        Assert.Equal(["compares:", "success requests (get, put, del):", "failure requests (get, put, del):", "FAILURE", "OK", key, "v3"], failure.Lines);

        var versionCompare = (await Etcdctl.RunAsync(
            ["txn", "-i"],
            $"version(\"{key}\") = \"3\"\ncreate(\"{Prefix}missing\") = \"0\"\n\ndel {Prefix}other\n\n\n",
            Deadline)).EnsureSuccess();
        Assert.Equal(["compares:", "success requests (get, put, del):", "failure requests (get, put, del):", "SUCCESS", "1"], versionCompare.Lines);

        Assert.Equal([key, "v3"], (await Etcdctl.RunAsync("get", "--prefix", Prefix)).EnsureSuccess().Lines);
    });

    [Fact]
    public Task WatchPrefixSeesLiveEvents() => Guard(async () =>
    {
        await using var watch = Etcdctl.Start("watch", "--prefix", Prefix);
        await WaitForWatchAsync(watch);

        (await Etcdctl.RunAsync("put", Prefix + "a", "1")).EnsureSuccess();
        (await Etcdctl.RunAsync("put", Prefix + "b", "2")).EnsureSuccess();
        (await Etcdctl.RunAsync("del", Prefix + "a")).EnsureSuccess();
        (await Etcdctl.RunAsync("put", "outside-" + Prefix, "ignored")).EnsureSuccess();
        (await Etcdctl.RunAsync("put", Prefix + "c", "3")).EnsureSuccess();

        var lines = await watch.ReadLinesAsync(11, Deadline);
        Assert.Equal(["PUT", Prefix + "a", "1", "PUT", Prefix + "b", "2", "DELETE", Prefix + "a", "", "PUT", Prefix + "c"], lines);
        Assert.Equal("3", await watch.ReadLineAsync(Deadline));
    });

    [Fact]
    public Task WatchRevReplaysHistoryWithPrevKv() => Guard(async () =>
    {
        var key = Prefix + "w";
        var start = EtcdctlJson.HeaderRevision((await Etcdctl.RunAsync("put", key, "a", "-w", "json")).EnsureSuccess().Stdout);
        (await Etcdctl.RunAsync("put", key, "b")).EnsureSuccess();
        (await Etcdctl.RunAsync("del", key)).EnsureSuccess();

        await using var withPrev = Etcdctl.Start("watch", "--prefix", Prefix, $"--rev={start}", "--prev-kv");
        // With --prev-kv etcdctl prints the previous key/value before the new one.
        var replay = await withPrev.ReadLinesAsync(13, Deadline);
        Assert.Equal(["PUT", key, "a", "PUT", key, "a", key, "b", "DELETE", key, "b", key, ""], replay);

        // History is followed by live events on the same watch.
        (await Etcdctl.RunAsync("put", key, "c")).EnsureSuccess();
        Assert.Equal(["PUT", key, "c"], await withPrev.ReadLinesAsync(3, Deadline));

        await using var plain = Etcdctl.Start("watch", key, $"--rev={start + 1}");
        Assert.Equal(["PUT", key, "b", "DELETE", key, "", "PUT", key, "c"], await plain.ReadLinesAsync(9, Deadline));
    });

    [Fact]
    public Task LeaseGrantKeepAliveOnceTimeToLiveAndRevoke() => Guard(async () =>
    {
        var grant = (await Etcdctl.RunAsync("lease", "grant", "600")).EnsureSuccess();
        var lease = ParseLeaseId(grant.Stdout);
        Assert.Equal($"lease {lease} granted with TTL(600s)", grant.Stdout.Trim());

        (await Etcdctl.RunAsync("put", $"--lease={lease}", Prefix + "k1", "v1")).EnsureSuccess();
        (await Etcdctl.RunAsync("put", $"--lease={lease}", Prefix + "k2", "v2")).EnsureSuccess();
        (await Etcdctl.RunAsync("put", Prefix + "free", "v3")).EnsureSuccess();

        var once = (await Etcdctl.RunAsync("lease", "keep-alive", "--once", lease)).EnsureSuccess();
        Assert.Equal($"lease {lease} keepalived with TTL(600)", once.Stdout.Trim());

        var ttl = (await Etcdctl.RunAsync("lease", "timetolive", "--keys", lease)).EnsureSuccess();
        var remaining = int.Parse(Between(ttl.Stdout, "remaining(", "s)"), CultureInfo.InvariantCulture);
        Assert.InRange(remaining, 590, 600);
        Assert.StartsWith($"lease {lease} granted with TTL(600s), remaining({remaining}s), attached keys([", ttl.Stdout.Trim(), StringComparison.Ordinal);
        // etcd lists attached keys in Go map order, i.e. unordered.
        var attached = Between(ttl.Stdout, "attached keys([", "])").Split(' ').Order(StringComparer.Ordinal);
        Assert.Equal([Prefix + "k1", Prefix + "k2"], attached);

        var list = (await Etcdctl.RunAsync("lease", "list")).EnsureSuccess();
        Assert.Contains(lease, list.Lines);

        Assert.Equal($"lease {lease} revoked", (await Etcdctl.RunAsync("lease", "revoke", lease)).EnsureSuccess().Stdout.Trim());
        Assert.Equal([Prefix + "free", "v3"], (await Etcdctl.RunAsync("get", "--prefix", Prefix)).EnsureSuccess().Lines);
        Assert.Equal($"lease {lease} already expired", (await Etcdctl.RunAsync("lease", "timetolive", lease)).EnsureSuccess().Stdout.Trim());

        var revokeAgain = await Etcdctl.RunAsync("lease", "revoke", lease);
        Assert.NotEqual(0, revokeAgain.ExitCode);
        Assert.Contains("etcdserver: requested lease not found", revokeAgain.Stderr, StringComparison.Ordinal);

        // The server answers TTL 0 for a missing lease; the Go client turns that into "lease not found".
        var keepAliveGone = await Etcdctl.RunAsync("lease", "keep-alive", "--once", lease);
        Assert.NotEqual(0, keepAliveGone.ExitCode);
        Assert.Contains("etcdserver: requested lease not found", keepAliveGone.Stderr, StringComparison.Ordinal);
    });

    [Fact]
    public Task LeaseKeepAliveStreams() => Guard(async () =>
    {
        // etcdctl refreshes every TTL/3 seconds: three refreshes of a 3 s lease take about 3 s.
        var lease = ParseLeaseId((await Etcdctl.RunAsync("lease", "grant", "3")).EnsureSuccess().Stdout);
        await using var keepAlive = Etcdctl.Start("lease", "keep-alive", lease);
        var lines = await keepAlive.ReadLinesAsync(3, Deadline);
        Assert.All(lines, line => Assert.Equal($"lease {lease} keepalived with TTL(3)", line));
        Assert.True(await keepAlive.InterruptAsync(Deadline));
        (await Etcdctl.RunAsync("lease", "revoke", lease)).EnsureSuccess();
    });

    [Fact]
    public Task CompactionMakesOldRevisionsUnreadable() => Guard(async () =>
    {
        var key = Prefix + "k";
        var old = EtcdctlJson.HeaderRevision((await Etcdctl.RunAsync("put", key, "old", "-w", "json")).EnsureSuccess().Stdout);
        var current = EtcdctlJson.HeaderRevision((await Etcdctl.RunAsync("put", key, "new", "-w", "json")).EnsureSuccess().Stdout);

        var compact = (await Etcdctl.RunAsync("compaction", current.ToString(CultureInfo.InvariantCulture))).EnsureSuccess();
        Assert.Equal($"compacted revision {current}", compact.Stdout.Trim());

        var failed = await Etcdctl.RunAsync("get", key, $"--rev={old}");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("Error: etcdserver: mvcc: required revision has been compacted", failed.Stderr, StringComparison.Ordinal);

        // The compaction revision itself is still readable.
        Assert.Equal([key, "new"], (await Etcdctl.RunAsync("get", key, $"--rev={current}")).EnsureSuccess().Lines);

        var again = await Etcdctl.RunAsync("compaction", old.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("Error: etcdserver: mvcc: required revision has been compacted", again.Stderr, StringComparison.Ordinal);

        var future = await Etcdctl.RunAsync("get", key, $"--rev={current + 1000}");
        Assert.Equal(1, future.ExitCode);
        Assert.Contains("Error: etcdserver: mvcc: required revision is a future revision", future.Stderr, StringComparison.Ordinal);
    });

    [Fact]
    public Task LockSecondContenderWaitsForFirst() => Guard(async () =>
    {
        var name = Prefix + "lock";
        await using var first = Etcdctl.Start("lock", name);
        var firstKey = await first.ReadLineAsync(Deadline);
        Assert.StartsWith(name + "/", firstKey, StringComparison.Ordinal);

        await using var second = Etcdctl.Start("lock", name);
        // The second contender is waiting once its own key exists under the lock prefix.
        await WaitUntilAsync(async () => (await Etcdctl.RunAsync("get", "--prefix", name + "/", "--keys-only")).Lines.Length == 2, Deadline, "second lock key");
        Assert.False(second.HasPendingLine, "second contender got the lock while the first held it");
        Assert.False(second.HasExited);

        Assert.True(await first.InterruptAsync(Deadline));
        var secondKey = await second.ReadLineAsync(Deadline);
        Assert.StartsWith(name + "/", secondKey, StringComparison.Ordinal);
        Assert.NotEqual(firstKey, secondKey);
        Assert.Equal([secondKey], (await Etcdctl.RunAsync("get", "--prefix", name + "/", "--keys-only")).Lines);

        Assert.True(await second.InterruptAsync(Deadline));
        Assert.Empty((await Etcdctl.RunAsync("get", "--prefix", name + "/")).Lines);
    });

    [Fact]
    public Task ElectSecondCandidateLeadsAfterFirstAndObserverSeesBoth() => Guard(async () =>
    {
        var name = Prefix + "election";
        await using var first = Etcdctl.Start("elect", name, "p1");
        var firstLines = await first.ReadLinesAsync(2, Deadline);
        Assert.StartsWith(name + "/", firstLines[0], StringComparison.Ordinal);
        Assert.Equal("p1", firstLines[1]);

        await using var observer = Etcdctl.Start("elect", "-l", name);
        Assert.Equal(firstLines, await observer.ReadLinesAsync(2, Deadline));

        await using var second = Etcdctl.Start("elect", name, "p2");
        await WaitUntilAsync(async () => (await Etcdctl.RunAsync("get", "--prefix", name + "/", "--keys-only")).Lines.Length == 2, Deadline, "second candidate key");
        Assert.False(second.HasPendingLine, "second candidate became leader while the first led");

        Assert.True(await first.InterruptAsync(Deadline));
        var secondLines = await second.ReadLinesAsync(2, Deadline);
        Assert.StartsWith(name + "/", secondLines[0], StringComparison.Ordinal);
        Assert.NotEqual(firstLines[0], secondLines[0]);
        Assert.Equal("p2", secondLines[1]);
        Assert.Equal(secondLines, await observer.ReadLinesAsync(2, Deadline));

        Assert.True(await second.InterruptAsync(Deadline));
    });

    [Fact]
    public Task EndpointStatusAndHealth() => Guard(async () =>
    {
        var status = (await Etcdctl.RunAsync("endpoint", "status")).EnsureSuccess();
        // "<endpoint>, <member id>, <version>, <db size>, <is leader>, <is learner>, <term>, <index>, <applied>, <errors>"
        var fields = status.Stdout.Trim().Split(", ");
        Assert.Equal(Target.Endpoint, fields[0]);
        Assert.Equal(Target.EndpointIsLeader ? "true" : "false", fields[4]);
        Assert.Equal("false", fields[5]);

        var json = (await Etcdctl.RunAsync("endpoint", "status", "-w", "json")).EnsureSuccess();
        Assert.Contains("\"leader\":", json.Stdout, StringComparison.Ordinal);

        var health = (await Etcdctl.RunAsync("endpoint", "health")).EnsureSuccess();
        Assert.StartsWith($"{Target.Endpoint} is healthy: successfully committed proposal: took = ", health.Stdout.Trim() + health.Stderr.Trim(), StringComparison.Ordinal);
    });

    [Fact]
    public Task MemberListShowsTheMember() => Guard(async () =>
    {
        var list = (await Etcdctl.RunAsync("member", "list")).EnsureSuccess();
        // "<id>, started, <name>, <peer urls>, <client urls>, <is learner>"
        Assert.Equal(Target.ClusterSize, list.Lines.Length);
        var fields = Assert.Single(list.Lines, line => line.Split(", ")[2] == Target.Server.Name).Split(", ");
        Assert.Equal("started", fields[1]);
        Assert.Equal(Target.Server.Name, fields[2]);
        Assert.Equal(Target.Endpoint, fields[4]);
        Assert.Equal("false", fields[5]);
    });

    [Fact]
    public Task SnapshotSaveWritesAFile() => Guard(async () =>
    {
        (await Etcdctl.RunAsync("put", Prefix + "k", "v")).EnsureSuccess();
        var path = Path.Combine(Path.GetTempPath(), $"arbiter-compat-snapshot-{Guid.NewGuid():N}.db");
        try
        {
            var save = (await Etcdctl.RunAsync("snapshot", "save", path)).EnsureSuccess();
            Assert.Contains($"Snapshot saved at {path}", save.Stdout, StringComparison.Ordinal);
            Assert.True(new FileInfo(path).Length > 0);
        }
        finally
        {
            File.Delete(path);
        }
    });

    /// <summary>
    /// Makes sure the watch is registered before the test writes: writes a sentinel until it shows up,
    /// then a marker, and consumes everything up to the marker.
    /// </summary>
    private async Task WaitForWatchAsync(EtcdctlHandle watch)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            (await Etcdctl.RunAsync("put", Prefix + "~sentinel", "s")).EnsureSuccess();
            try
            {
                await watch.ReadLineAsync(TimeSpan.FromMilliseconds(500));
                break;
            }
            catch (TimeoutException) when (DateTime.UtcNow < deadline)
            {
                // Not registered yet; the next sentinel will tell.
            }
        }

        (await Etcdctl.RunAsync("put", Prefix + "~marker", "m")).EnsureSuccess();
        await watch.ReadUntilAsync(line => line == Prefix + "~marker", Deadline);
        Assert.Equal("m", await watch.ReadLineAsync(Deadline));
        (await Etcdctl.RunAsync("del", Prefix + "~sentinel")).EnsureSuccess();
        (await Etcdctl.RunAsync("del", Prefix + "~marker")).EnsureSuccess();
        await watch.ReadUntilAsync(line => line == Prefix + "~marker", Deadline);
        Assert.Equal(string.Empty, await watch.ReadLineAsync(Deadline));
    }

    private static string ParseLeaseId(string grantOutput) => grantOutput.Trim().Split(' ')[1];

    private static string Between(string text, string start, string end)
    {
        var from = text.IndexOf(start, StringComparison.Ordinal) + start.Length;
        return text[from..text.IndexOf(end, from, StringComparison.Ordinal)];
    }
}

[Trait("Target", "Etcd")]
public sealed class EtcdctlScenariosOnEtcd(EtcdFixture target, ITestOutputHelper output)
    : EtcdctlScenarios(target, output), IClassFixture<EtcdFixture>;

[Trait("Target", "Arbiter")]
public sealed class EtcdctlScenariosOnArbiter(ArbiterFixture target, ITestOutputHelper output)
    : EtcdctlScenarios(target, output), IClassFixture<ArbiterFixture>;

[Trait("Target", "ArbiterCluster")]
[Collection(ArbiterClusterCollection.Name)]
public sealed class EtcdctlScenariosOnArbiterCluster(ArbiterClusterFixture target, ITestOutputHelper output)
    : EtcdctlScenarios(target, output);
