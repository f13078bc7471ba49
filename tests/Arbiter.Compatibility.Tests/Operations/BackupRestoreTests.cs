using System.Text.Json;
using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Operations;

/// <summary>
/// <c>arbiter snapshot save|status|restore</c> against real <c>arbiter serve</c> processes: a store with
/// history, leases and a compaction is saved, restored into a new data dir and served again, and
/// every key, value, create/mod revision, version, lease and old revision must read back the same;
/// etcdctl's own snapshot save works against Arbiter and its file restores; bad input is one line
/// on stderr and a non-zero exit, with nothing created.
/// </summary>
public sealed class BackupRestoreTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Save_then_restore_into_a_new_data_dir_serves_every_key_revision_version_and_lease_again()
    {
        await using var source = new ArbiterProcess("backup-source");
        await source.StartAsync();
        var work = Directory.CreateTempSubdirectory("arbiter-backup-");
        try
        {
            var (revision, compacted, leaseId) = await StoreHistory.WriteAsync(source.Endpoint);
            var file = Path.Combine(work.FullName, "backup.db");
            var saved = await ArbiterCli.RunAsync("snapshot", "save", file, "--endpoints", source.Endpoint);
            Assert.True(saved.ExitCode == 0, saved.ToString());
            Assert.StartsWith($"Snapshot saved at {file}", saved.Stdout, StringComparison.Ordinal);

            // status: the revision, the live keys, the size, and the hash that HashKV gives at that revision.
            var status = await ArbiterCli.RunAsync("snapshot", "status", file, "-w", "json");
            Assert.True(status.ExitCode == 0, status.ToString());
            using var json = JsonDocument.Parse(status.Stdout);
            using var channel = GrpcChannel.ForAddress(source.Endpoint);
            var hashKv = await new Maintenance.MaintenanceClient(channel).HashKVAsync(new HashKVRequest { Revision = revision }, deadline: DateTime.UtcNow + Deadline);
            var sourceKeys = await StoreHistory.ReadAllAsync(source.Endpoint, revision: 0);
            Assert.Equal(revision, json.RootElement.GetProperty("revision").GetInt64());
            Assert.Equal(hashKv.Hash, json.RootElement.GetProperty("hash").GetUInt32());
            Assert.Equal(sourceKeys.Count, json.RootElement.GetProperty("totalKey").GetInt64());
            Assert.Equal(new FileInfo(file).Length, json.RootElement.GetProperty("totalSize").GetInt64());
            var table = await ArbiterCli.RunAsync("snapshot", "status", file, "-w", "table");
            Assert.Contains("TOTAL KEYS", table.Stdout, StringComparison.Ordinal);
            Assert.Contains($"{hashKv.Hash:x}", table.Stdout, StringComparison.Ordinal);

            // restore into the (empty) data dir of a new server process, then serve it.
            await using var restored = new ArbiterProcess("backup-restored");
            var restore = await ArbiterCli.RunAsync("snapshot", "restore", file, "--data-dir", restored.DataDir, "--name", restored.Name);
            Assert.True(restore.ExitCode == 0, restore.ToString());
            await restored.StartAsync();
            await StoreHistory.AssertSameAsync(source.Endpoint, restored.Endpoint, revision, compacted, leaseId);

            // New ids (etcdctl restore's rule): another member and cluster than the source's.
            using var restoredChannel = GrpcChannel.ForAddress(restored.Endpoint);
            var (before, after) = (
                await new Maintenance.MaintenanceClient(channel).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + Deadline),
                await new Maintenance.MaintenanceClient(restoredChannel).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + Deadline));
            Assert.NotEqual(before.Header.MemberId, after.Header.MemberId);
            Assert.NotEqual(before.Header.ClusterId, after.Header.ClusterId);
            Assert.Contains($"{after.Header.MemberId:x16}", restore.Stdout, StringComparison.Ordinal);

            // The restored store takes writes after the restored revision.
            var put = await new KV.KVClient(restoredChannel).PutAsync(new PutRequest { Key = Utf8("after-restore"), Value = Utf8("v") }, deadline: DateTime.UtcNow + Deadline);
            Assert.Equal(revision + 1, put.Header.Revision);
        }
        catch (Exception)
        {
            output.WriteLine(source.Log);
            throw;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Etcdctl_snapshot_save_works_against_arbiter_and_its_file_restores()
    {
        await using var source = new ArbiterProcess("backup-etcdctl");
        await source.StartAsync();
        var work = Directory.CreateTempSubdirectory("arbiter-backup-");
        try
        {
            var (revision, compacted, leaseId) = await StoreHistory.WriteAsync(source.Endpoint);
            var file = Path.Combine(work.FullName, "etcdctl.db");
            var saved = await new EtcdctlRunner(source.Endpoint).RunAsync("snapshot", "save", file);
            saved.EnsureSuccess();
            await using var restored = new ArbiterProcess("backup-etcdctl-restored");
            var restore = await ArbiterCli.RunAsync("snapshot", "restore", file, "--data-dir", restored.DataDir, "--name", restored.Name);
            Assert.True(restore.ExitCode == 0, restore.ToString());
            await restored.StartAsync();
            await StoreHistory.AssertSameAsync(source.Endpoint, restored.Endpoint, revision, compacted, leaseId);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Bad_input_is_one_line_on_stderr_a_nonzero_exit_and_nothing_created()
    {
        await using var source = new ArbiterProcess("backup-bad");
        await source.StartAsync();
        var work = Directory.CreateTempSubdirectory("arbiter-backup-");
        try
        {
            await StoreHistory.WriteAsync(source.Endpoint);
            var good = Path.Combine(work.FullName, "good.db");
            Assert.Equal(0, (await ArbiterCli.RunAsync("snapshot", "save", good, "--endpoints", source.Endpoint)).ExitCode);
            var bytes = await File.ReadAllBytesAsync(good);

            var corrupt = Path.Combine(work.FullName, "corrupt.db");
            var flipped = (byte[])bytes.Clone();
            flipped[100] ^= 0x40;
            await File.WriteAllBytesAsync(corrupt, flipped);
            var truncated = Path.Combine(work.FullName, "truncated.db");
            await File.WriteAllBytesAsync(truncated, bytes[..(bytes.Length / 2)]);
            var garbage = Path.Combine(work.FullName, "garbage.db");
            await File.WriteAllBytesAsync(garbage, new byte[512 + 32]);
            var existing = Path.Combine(work.FullName, "existing");
            Directory.CreateDirectory(existing);
            await File.WriteAllTextAsync(Path.Combine(existing, "keep-me"), "x");

            var cases = new (string What, string[] Arguments, string Expected, string? MustNotExist)[]
            {
                ("corrupt", ["snapshot", "restore", corrupt, "--data-dir", Path.Combine(work.FullName, "d1")], "SHA-256 does not match", Path.Combine(work.FullName, "d1")),
                ("truncated", ["snapshot", "restore", truncated, "--data-dir", Path.Combine(work.FullName, "d2")], "truncated", Path.Combine(work.FullName, "d2")),
                ("truncated, hash check skipped", ["snapshot", "restore", truncated, "--skip-hash-check", "--data-dir", Path.Combine(work.FullName, "d3")], "truncated", Path.Combine(work.FullName, "d3")),
                ("not a snapshot", ["snapshot", "restore", garbage, "--data-dir", Path.Combine(work.FullName, "d4")], "SHA-256 does not match", Path.Combine(work.FullName, "d4")),
                ("not a snapshot, hash check skipped", ["snapshot", "restore", garbage, "--skip-hash-check", "--data-dir", Path.Combine(work.FullName, "d7")], "not an Arbiter snapshot", Path.Combine(work.FullName, "d7")),
                ("missing file", ["snapshot", "restore", Path.Combine(work.FullName, "nope.db"), "--data-dir", Path.Combine(work.FullName, "d5")], "cannot read", Path.Combine(work.FullName, "d5")),
                ("existing data dir", ["snapshot", "restore", good, "--data-dir", existing], "exists", null),
                ("member not in --initial-cluster", ["snapshot", "restore", good, "--data-dir", Path.Combine(work.FullName, "d6"), "--name", "a", "--initial-cluster", "b=http://127.0.0.1:1"], "--initial-cluster", Path.Combine(work.FullName, "d6")),
                ("status of a corrupt file", ["snapshot", "status", corrupt], "SHA-256 does not match", null),
                ("save from two endpoints", ["snapshot", "save", Path.Combine(work.FullName, "two.db"), "--endpoints", $"{source.Endpoint},{source.Endpoint}"], "one selected member", Path.Combine(work.FullName, "two.db")),
                ("save from nowhere", ["snapshot", "save", Path.Combine(work.FullName, "none.db"), "--endpoints", $"http://127.0.0.1:{PortAllocator.FreePort()}", "--command-timeout-ms", "3000"], "failed", Path.Combine(work.FullName, "none.db")),
            };
            foreach (var (what, arguments, expected, mustNotExist) in cases)
            {
                await ArbiterCli.AssertRefusedAsync(what, arguments, expected, output, mustNotExist);
            }

            Assert.Equal(["keep-me"], Directory.EnumerateFileSystemEntries(existing).Select(Path.GetFileName));
            Assert.Empty(Directory.EnumerateDirectories(work.FullName, ".*restoring*"));
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static ByteString Utf8(string text) => ByteString.CopyFromUtf8(text);
}
