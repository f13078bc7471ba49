using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Arbiter.Node;
using Arbiter.Node.Backup;
using Arbiter.Node.Cluster;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Cli.Commands;

/// <summary>
/// <c>arbiter snapshot save|status|restore</c>, as etcdctl's: save streams Maintenance.Snapshot from
/// one member and keeps it only once its SHA-256 checks out; status describes a file; restore builds a
/// new data directory from one (new member and cluster ids). Each failure is one line on stderr and a
/// non-zero exit.
/// </summary>
internal static class SnapshotCommand
{
    /// <summary>Exit code of a failed save, status or restore (etcdctl's).</summary>
    private const int ExitError = 1;

    /// <summary>Exit code of bad flags.</summary>
    private const int ExitBadArguments = 2;

    public static Command Create()
    {
        var command = new Command("snapshot", "Back up a member (save), describe a backup (status), or build a new data directory from one (restore).");
        command.Subcommands.Add(CreateSave());
        command.Subcommands.Add(CreateStatus());
        command.Subcommands.Add(CreateRestore());
        return command;
    }

    private static Command CreateSave()
    {
        var file = new Argument<string>("file") { Description = "Where to write the snapshot (written beside it first, then renamed)." };
        var endpoints = new Option<string>("--endpoints") { Description = "The client URL of the one member to back up.", DefaultValueFactory = _ => "http://127.0.0.1:2379" };
        var timeoutMs = new Option<int>("--command-timeout-ms") { Description = "Deadline of the whole transfer, ms.", DefaultValueFactory = _ => 5 * 60 * 1000 };
        var command = new Command("save", "Stream a consistent snapshot from one member into a file (as etcdctl snapshot save).") { file, endpoints, timeoutMs };
        command.SetAction(async (result, cancellationToken) =>
        {
            var urls = result.GetValue(endpoints)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (urls.Length != 1)
            {
                Console.Error.WriteLine($"error: snapshot must be requested from one selected member, not {urls.Length} (give one --endpoints URL)");
                return ExitBadArguments;
            }

            var path = Path.GetFullPath(result.GetValue(file)!);
            var partial = path + ".part";
            try
            {
                using var channel = GrpcChannel.ForAddress(urls[0], new GrpcChannelOptions { MaxReceiveMessageSize = null });
                var deadline = DateTime.UtcNow.AddMilliseconds(Math.Max(1, result.GetValue(timeoutMs)));
                using var call = new Maintenance.MaintenanceClient(channel).Snapshot(new SnapshotRequest(), deadline: deadline, cancellationToken: cancellationToken);
                long revision = 0;
                await using (var output = new FileStream(partial, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
                {
                    await foreach (var chunk in call.ResponseStream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                    {
                        revision = chunk.Header?.Revision ?? revision;
                        chunk.Blob.WriteTo(output);
                    }

                    output.Flush(flushToDisk: true);
                }

                var problem = SnapshotFile.VerifyReceived(await File.ReadAllBytesAsync(partial, cancellationToken).ConfigureAwait(false));
                if (problem is not null)
                {
                    File.Delete(partial);
                    Console.Error.WriteLine($"error: {problem}; nothing was written to {path}");
                    return ExitError;
                }

                File.Move(partial, path, overwrite: true);
                SyncDirectory(Path.GetDirectoryName(path)!);
                Console.Out.WriteLine($"Snapshot saved at {path} (revision {revision.ToString(CultureInfo.InvariantCulture)}, {new FileInfo(path).Length.ToString(CultureInfo.InvariantCulture)} bytes)");
                return 0;
            }
            catch (Exception e) when (e is RpcException or IOException or UnauthorizedAccessException or UriFormatException or InvalidOperationException)
            {
                TryDelete(partial);
                Console.Error.WriteLine($"error: snapshot save from {urls[0]} failed: {(e is RpcException r ? $"{r.StatusCode} {r.Status.Detail}" : e.Message)}");
                return ExitError;
            }
        });
        return command;
    }

    private static Command CreateStatus()
    {
        var file = new Argument<string>("file") { Description = "A snapshot file." };
        var output = new Option<string>("--write-out", "-w") { Description = "table, simple or json (etcdctl's).", DefaultValueFactory = _ => "simple" };
        output.AcceptOnlyFromAmong("simple", "table", "json");
        var command = new Command("status", "Show a snapshot file's hash, revision, total keys and size (as etcdctl snapshot status).") { file, output };
        command.SetAction(result =>
        {
            SnapshotFile snapshot;
            try
            {
                snapshot = SnapshotFile.Read(result.GetValue(file)!);
            }
            catch (InvalidDataException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitError;
            }

            var hash = snapshot.Hash;
            var revision = snapshot.Revision;
            var keys = snapshot.KeyCount;
            var size = snapshot.SizeBytes;
            switch (result.GetValue(output))
            {
                case "json":
                    Console.Out.WriteLine(new JsonObject { ["hash"] = hash, ["revision"] = revision, ["totalKey"] = keys, ["totalSize"] = size }.ToJsonString());
                    break;
                case "table":
                    Console.Out.Write(Table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], [hash.ToString("x", CultureInfo.InvariantCulture), revision.ToString(CultureInfo.InvariantCulture), keys.ToString(CultureInfo.InvariantCulture), HumanBytes(size)]));
                    break;
                default:
                    Console.Out.WriteLine(string.Join(", ", hash.ToString("x", CultureInfo.InvariantCulture), revision.ToString(CultureInfo.InvariantCulture), keys.ToString(CultureInfo.InvariantCulture), HumanBytes(size)));
                    break;
            }

            return 0;
        });
        return command;
    }

    private static Command CreateRestore()
    {
        var file = new Argument<string>("file") { Description = "The snapshot file to restore." };
        var name = new Option<string>("--name") { Description = "The new member's name (as it will be served).", DefaultValueFactory = _ => "default" };
        var dataDir = new Option<string?>("--data-dir") { Description = "The new data directory (default: ./data/<name>); must not exist." };
        var initialCluster = new Option<string?>("--initial-cluster") { Description = "Founding members of the new cluster as name=peerURL,… (given: restore a Raft member; omitted: a single node)." };
        var advertisePeer = new Option<string>("--initial-advertise-peer-urls") { Description = "This member's peer URL.", DefaultValueFactory = _ => "http://127.0.0.1:2380" };
        var clusterToken = new Option<string>("--initial-cluster-token") { Description = "The new cluster's token (mixed into member and cluster ids).", DefaultValueFactory = _ => "arbiter-cluster" };
        var skipHashCheck = new Option<bool>("--skip-hash-check") { Description = "Accept a file without its trailing SHA-256 (copied from a data directory, not saved)." };
        var command = new Command("restore", "Build a new data directory from a snapshot file, Arbiter's or etcd's (migration in from etcd 3.x), with new member and cluster ids (as etcdctl snapshot restore).")
        {
            file, name, dataDir, initialCluster, advertisePeer, clusterToken, skipHashCheck,
        };
        command.SetAction(result =>
        {
            var memberName = result.GetValue(name)!;
            var peerUrl = result.GetValue(advertisePeer)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? string.Empty;
            var options = new NodeOptions
            {
                Name = memberName,
                DataDirectory = Path.GetFullPath(result.GetValue(dataDir) ?? Path.Combine("data", memberName)),
                AdvertisePeerUrls = [peerUrl],
                ClusterToken = result.GetValue(clusterToken)!,
            };
            if (result.GetValue(initialCluster) is { } members)
            {
                var founding = ServeCommand.ParseInitialCluster(members);
                if (founding is null || !founding.TryGetValue(memberName, out var own) || !SamePeer(own, peerUrl))
                {
                    Console.Error.WriteLine($"error: --initial-cluster must list this member as {memberName}={peerUrl} (name=peerURL,…)");
                    return ExitBadArguments;
                }

                options = options with { Cluster = new ClusterOptions { ListenPeerUrl = peerUrl, InitialCluster = founding } };
            }

            try
            {
                var snapshot = SnapshotFile.Read(result.GetValue(file)!, result.GetValue(skipHashCheck));
                SnapshotRestore.Restore(snapshot, options.DataDirectory!, clusterMember: options.Cluster is not null);
                Console.Out.WriteLine(
                    $"Restored {(snapshot.FromEtcd ? "etcd snapshot (migrated: keys, history, leases, users and roles)" : "snapshot")} at revision {snapshot.Revision.ToString(CultureInfo.InvariantCulture)} into {options.DataDirectory}: " +
                    $"member {memberName} ({SnapshotRestore.MemberIdFor(options):x16}) of cluster {SnapshotRestore.ClusterIdFor(options):x16}; " +
                    $"serve it with the same --name, --initial-advertise-peer-urls, --initial-cluster-token{(options.Cluster is null ? string.Empty : " and --initial-cluster")}");
                return 0;
            }
            catch (InvalidDataException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitError;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitError;
            }
        });
        return command;
    }

    private static bool SamePeer(string a, string b)
    {
        try
        {
            return PeerAddress.Parse(a).Equals(PeerAddress.Parse(b));
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>etcdctl's sizes (go-humanize, powers of 1000): "77 B", "20 kB", "2.1 MB".</summary>
    internal static string HumanBytes(long bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB", "PB"];
        if (bytes < 10)
        {
            return $"{bytes.ToString(CultureInfo.InvariantCulture)} B";
        }

        var exponent = Math.Min(units.Length - 1, (int)Math.Floor(Math.Log(bytes, 1000)));
        var value = Math.Floor(bytes / Math.Pow(1000, exponent) * 10 + 0.5) / 10;
        return value < 10
            ? $"{value.ToString("0.0", CultureInfo.InvariantCulture)} {units[exponent]}"
            : $"{value.ToString("0", CultureInfo.InvariantCulture)} {units[exponent]}";
    }

    private static string Table(string[] header, string[] row)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, row[i].Length) + 2).ToArray();
        var rule = "+" + string.Join("+", widths.Select(w => new string('-', w))) + "+\n";
        string Line(string[] cells) => "|" + string.Join("|", cells.Select((c, i) => Center(c, widths[i]))) + "|\n";
        return rule + Line(header) + rule + Line(row) + rule;
    }

    private static string Center(string text, int width)
    {
        var left = (width - text.Length) / 2;
        return new string(' ', left) + text + new string(' ', width - text.Length - left);
    }

    private static void SyncDirectory(string directory)
    {
        // The rename is durable once the directory is: open it read-only and fsync (Linux allows it).
        try
        {
            using var handle = File.OpenHandle(directory, FileMode.Open, FileAccess.Read);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the file itself was fsynced before the rename.
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing more to do; the error that matters is reported.
        }
    }
}
