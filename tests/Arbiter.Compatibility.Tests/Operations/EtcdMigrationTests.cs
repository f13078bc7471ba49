using System.Text.Json;
using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Operations;

/// <summary>
/// Migration in from etcd: a real etcd 3.4 is written to (versions, deletes, multi-key transactions,
/// leases, a compaction, users and roles), <c>etcdctl snapshot save</c> takes its backend, and
/// <c>arbiter snapshot restore</c> turns that bbolt file into a new Arbiter data dir. Served, every key
/// at every revision since the compaction, the compaction itself, the leases with their keys and the
/// users, roles and permissions must read back through etcdctl exactly as from etcd. Damaged etcd files
/// are refused with one line and nothing created.
/// </summary>
public sealed class EtcdMigrationTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task An_etcd_snapshot_restores_with_every_key_revision_version_lease_and_compaction()
    {
        await using var etcd = new EtcdProcess("migrate-etcd");
        await etcd.StartAsync();
        var work = Directory.CreateTempSubdirectory("arbiter-migrate-");
        try
        {
            var (revision, compacted, leaseId) = await StoreHistory.WriteAsync(etcd.Endpoint);
            var file = Path.Combine(work.FullName, "etcd.db");
            (await new EtcdctlRunner(etcd.Endpoint).RunAsync("snapshot", "save", file)).EnsureSuccess();

            // status reads the etcd file too: its revision and live keys.
            var status = await ArbiterCli.RunAsync("snapshot", "status", file, "-w", "json");
            Assert.True(status.ExitCode == 0, status.ToString());
            using (var json = JsonDocument.Parse(status.Stdout))
            {
                Assert.Equal(revision, json.RootElement.GetProperty("revision").GetInt64());
                Assert.Equal((await StoreHistory.ReadAllAsync(etcd.Endpoint, 0)).Count, json.RootElement.GetProperty("totalKey").GetInt64());
            }

            await using var restored = new ArbiterProcess("migrate-restored");
            var restore = await ArbiterCli.RunAsync("snapshot", "restore", file, "--data-dir", restored.DataDir, "--name", restored.Name);
            Assert.True(restore.ExitCode == 0, restore.ToString());
            Assert.Contains("etcd snapshot", restore.Stdout, StringComparison.Ordinal);
            await restored.StartAsync();
            await StoreHistory.AssertSameAsync(etcd.Endpoint, restored.Endpoint, revision, compacted, leaseId);
            await AssertSameThroughEtcdctlAsync(etcd.Endpoint, restored.Endpoint, compacted, revision);

            // The migrated store goes on from etcd's revision.
            using var channel = GrpcChannel.ForAddress(restored.Endpoint);
            var put = await new KV.KVClient(channel).PutAsync(new PutRequest { Key = Utf8("after-migration"), Value = Utf8("v") }, deadline: DateTime.UtcNow + Deadline);
            Assert.Equal(revision + 1, put.Header.Revision);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_random_etcd_history_with_transactions_and_users_migrates_exactly()
    {
        var seed = Environment.GetEnvironmentVariable("ARBITER_TEST_SEED") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay: ARBITER_TEST_SEED={seed})");
        var random = new Random(seed);
        await using var etcd = new EtcdProcess("migrate-random");
        await etcd.StartAsync();
        var work = Directory.CreateTempSubdirectory("arbiter-migrate-");
        try
        {
            var etcdctl = new EtcdctlRunner(etcd.Endpoint);
            using var channel = GrpcChannel.ForAddress(etcd.Endpoint);
            var kv = new KV.KVClient(channel);
            var leases = new Lease.LeaseClient(channel);
            var leaseIds = new List<long>();
            for (var i = 0; i < 3; i++)
            {
                leaseIds.Add((await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 300 + (i * 60) }, deadline: DateTime.UtcNow + Deadline)).ID);
            }

            string Key() => $"k/{random.Next(12):D2}";
            long compacted = 0;
            for (var step = 0; step < 150; step++)
            {
                var roll = random.Next(100);
                if (step == 100)
                {
                    var now = (await kv.RangeAsync(new RangeRequest { Key = Utf8("k/"), Limit = 1 }, deadline: DateTime.UtcNow + Deadline)).Header.Revision;
                    compacted = Math.Max(2, now - random.Next(20));
                    await kv.CompactAsync(new CompactionRequest { Revision = compacted, Physical = true }, deadline: DateTime.UtcNow + Deadline);
                }
                else if (roll < 55)
                {
                    var lease = random.Next(4) == 0 ? leaseIds[random.Next(leaseIds.Count)] : 0;
                    await kv.PutAsync(new PutRequest { Key = Utf8(Key()), Value = Utf8($"v{step}-{new string('x', random.Next(40))}"), Lease = lease }, deadline: DateTime.UtcNow + Deadline);
                }
                else if (roll < 70)
                {
                    await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Utf8(Key()) }, deadline: DateTime.UtcNow + Deadline);
                }
                else if (roll < 90)
                {
                    // One revision, several changes: sub revisions must survive the migration.
                    var txn = new TxnRequest();
                    foreach (var key in Enumerable.Range(0, 1 + random.Next(3)).Select(_ => Key()).Distinct())
                    {
                        txn.Success.Add(random.Next(3) == 0
                            ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Utf8(key) } }
                            : new RequestOp { RequestPut = new PutRequest { Key = Utf8(key), Value = Utf8($"t{step}") } });
                    }

                    await kv.TxnAsync(txn, deadline: DateTime.UtcNow + Deadline);
                }
                else if (roll < 93 && leaseIds.Count > 1)
                {
                    var doomed = leaseIds[random.Next(leaseIds.Count)];
                    leaseIds.Remove(doomed);
                    await leases.LeaseRevokeAsync(new LeaseRevokeRequest { ID = doomed }, deadline: DateTime.UtcNow + Deadline);
                }
            }

            foreach (var command in new[]
            {
                new[] { "user", "add", "root:rootpw" }, ["role", "add", "reader"], ["role", "grant-permission", "reader", "read", "k/", "--prefix=true"],
                ["role", "add", "writer"], ["role", "grant-permission", "writer", "readwrite", "k/00", "k/05"],
                ["user", "add", "alice:alicepw"], ["user", "grant-role", "alice", "reader"], ["user", "add", "bob:bobpw"], ["user", "grant-role", "bob", "writer"],
                ["auth", "enable"],
            })
            {
                (await etcdctl.RunAsync(command)).EnsureSuccess();
            }

            var file = Path.Combine(work.FullName, "etcd.db");
            (await etcdctl.RunAsync("--user", "root:rootpw", "snapshot", "save", file)).EnsureSuccess();
            var revision = (await etcdctl.RunAsync("--user", "root:rootpw", "endpoint", "status", "-w", "json")).EnsureSuccess().Stdout;
            var head = JsonDocument.Parse(revision).RootElement[0].GetProperty("Status").GetProperty("header").GetProperty("revision").GetInt64();

            await using var restored = new ArbiterProcess("migrate-random-restored");
            var restore = await ArbiterCli.RunAsync("snapshot", "restore", file, "--data-dir", restored.DataDir, "--name", restored.Name);
            Assert.True(restore.ExitCode == 0, restore.ToString());
            await restored.StartAsync();
            await AssertSameThroughEtcdctlAsync(etcd.Endpoint, restored.Endpoint, Math.Max(1, compacted), head, "--user", "root:rootpw");

            // Auth came along: the same users, roles and permissions decide the same way.
            foreach (var arguments in new[]
            {
                new[] { "--user", "root:rootpw", "user", "list" }, ["--user", "root:rootpw", "role", "get", "writer"], ["--user", "root:rootpw", "auth", "status"],
                ["--user", "alice:alicepw", "get", "k/", "--prefix", "--keys-only"], ["--user", "alice:alicepw", "put", "k/00", "x"],
                ["--user", "bob:bobpw", "put", "k/01", "from-bob"], ["--user", "bob:bobpw", "put", "k/07", "x"], ["--user", "alice:wrong", "get", "k/00"],
            })
            {
                var expected = await etcdctl.RunAsync(arguments);
                var actual = await new EtcdctlRunner(restored.Endpoint).RunAsync(arguments);
                Assert.True((expected.ExitCode, expected.Stdout.Trim(), LastLine(expected.Stderr)) == (actual.ExitCode, actual.Stdout.Trim(), LastLine(actual.Stderr)), $"seed {seed}: {string.Join(' ', arguments)}\netcd: {expected}\narbiter: {actual}");
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Damaged_etcd_snapshots_are_one_line_on_stderr_and_nothing_is_created()
    {
        await using var etcd = new EtcdProcess("migrate-bad");
        await etcd.StartAsync();
        var work = Directory.CreateTempSubdirectory("arbiter-migrate-");
        try
        {
            await StoreHistory.WriteAsync(etcd.Endpoint);
            var good = Path.Combine(work.FullName, "good.db");
            (await new EtcdctlRunner(etcd.Endpoint).RunAsync("snapshot", "save", good)).EnsureSuccess();
            var bytes = await File.ReadAllBytesAsync(good);
            var database = bytes[..^32];
            const int PageSize = 4096;

            async Task<string> Write(string name, byte[] content)
            {
                var path = Path.Combine(work.FullName, name);
                await File.WriteAllBytesAsync(path, content);
                return path;
            }

            var flipped = (byte[])bytes.Clone();
            flipped[(2 * PageSize) + 100] ^= 0x40;

            // Both meta pages' checksums broken (the hash check skipped, so the reader itself must notice).
            var badMeta = (byte[])database.Clone();
            badMeta[16 + 20] ^= 0x01;
            badMeta[PageSize + 16 + 20] ^= 0x01;

            // A page that points at itself (a cycle) or past the end: the root bucket's first page id rewritten.
            var cycle = (byte[])database.Clone();
            var pastEnd = (byte[])database.Clone();
            foreach (var meta in new[] { 0, PageSize })
            {
                // Rewrite root to page 1 (a meta page, not a branch or leaf) in one copy and to a huge id in the other, fixing the checksum.
                SetRootAndChecksum(cycle, meta, 1);
                SetRootAndChecksum(pastEnd, meta, 1UL << 40);
            }

            var cases = new (string What, string[] Arguments, string Expected)[]
            {
                ("corrupt", ["snapshot", "restore", await Write("flipped.db", flipped), "--data-dir", Path.Combine(work.FullName, "d1")], "SHA-256 does not match"),
                ("truncated", ["snapshot", "restore", await Write("truncated.db", bytes[..(bytes.Length / 2)]), "--data-dir", Path.Combine(work.FullName, "d2")], "no SHA-256"),
                ("truncated, hash check skipped", ["snapshot", "restore", await Write("truncated2.db", database[..(3 * PageSize)]), "--skip-hash-check", "--data-dir", Path.Combine(work.FullName, "d3")], "bbolt"),
                ("both meta pages broken", ["snapshot", "restore", await Write("meta.db", badMeta), "--skip-hash-check", "--data-dir", Path.Combine(work.FullName, "d4")], "no valid meta page"),
                ("root is a meta page", ["snapshot", "restore", await Write("cycle.db", cycle), "--skip-hash-check", "--data-dir", Path.Combine(work.FullName, "d5")], "bbolt"),
                ("root past the end", ["snapshot", "restore", await Write("past.db", pastEnd), "--skip-hash-check", "--data-dir", Path.Combine(work.FullName, "d6")], "bbolt"),
                ("status of a corrupt file", ["snapshot", "status", Path.Combine(work.FullName, "flipped.db")], "SHA-256 does not match"),
            };
            foreach (var (what, arguments, expected) in cases)
            {
                await ArbiterCli.AssertRefusedAsync(what, arguments, expected, output, arguments.SkipWhile(a => a != "--data-dir").Skip(1).FirstOrDefault());
            }

            // The intact database without its hash (a copied member/snap/db) restores with --skip-hash-check.
            var copied = await Write("copied.db", database);
            var refused = await ArbiterCli.RunAsync("snapshot", "restore", copied, "--data-dir", Path.Combine(work.FullName, "d7"));
            Assert.Contains("--skip-hash-check", refused.Stderr, StringComparison.Ordinal);
            var accepted = await ArbiterCli.RunAsync("snapshot", "restore", copied, "--skip-hash-check", "--data-dir", Path.Combine(work.FullName, "d8"));
            Assert.True(accepted.ExitCode == 0, accepted.ToString());
            Assert.Empty(Directory.EnumerateDirectories(work.FullName, ".*restoring*"));
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>
    /// etcdctl get of the whole keyspace at every revision from <paramref name="from"/> to
    /// <paramref name="to"/>, and of a compacted revision, reads the same from both (keys, values,
    /// create and mod revisions, versions, leases; headers differ by design: new cluster and member ids).
    /// </summary>
    private static async Task AssertSameThroughEtcdctlAsync(string expectedEndpoint, string actualEndpoint, long from, long to, params string[] credentials)
    {
        var expected = new EtcdctlRunner(expectedEndpoint);
        var actual = new EtcdctlRunner(actualEndpoint);
        for (var revision = from; revision <= to; revision++)
        {
            string[] arguments = [.. credentials, "get", "", "--prefix", "--rev", revision.ToString(System.Globalization.CultureInfo.InvariantCulture), "-w", "json"];
            var want = (await expected.RunAsync(arguments)).EnsureSuccess();
            var got = (await actual.RunAsync(arguments)).EnsureSuccess();
            Assert.True(Kvs(want.Stdout) == Kvs(got.Stdout), $"at revision {revision}:\netcd:    {Kvs(want.Stdout)}\narbiter: {Kvs(got.Stdout)}");
        }

        string[] leaseList = [.. credentials, "lease", "list"];
        Assert.Equal((await expected.RunAsync(leaseList)).Stdout, (await actual.RunAsync(leaseList)).Stdout);
        if (from > 1)
        {
            string[] old = [.. credentials, "get", "", "--prefix", "--rev", (from - 1).ToString(System.Globalization.CultureInfo.InvariantCulture)];
            Assert.Equal(LastLine((await expected.RunAsync(old)).Stderr), LastLine((await actual.RunAsync(old)).Stderr));
        }
    }

    private static string Kvs(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.TryGetProperty("kvs", out var kvs) ? kvs.GetRawText() : "[]";
    }

    private static string LastLine(string stderr) =>
        stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault(l => !l.StartsWith('{')) ?? string.Empty;

    private static void SetRootAndChecksum(byte[] database, int metaPageOffset, ulong root)
    {
        var meta = database.AsSpan(metaPageOffset + 16, 64);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(meta[16..], root);
        var hash = 0xcbf29ce484222325UL;
        foreach (var b in meta[..56])
        {
            hash ^= b;
            hash *= 0x100000001b3UL;
        }

        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(meta[56..], hash);
    }

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);
}
