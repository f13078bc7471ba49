using Arbiter.Node.Cluster;
using Arbiter.Protocol.Internal;
using Arbiter.Storage;
using Google.Protobuf;

namespace Arbiter.Node.Backup;

/// <summary>
/// <c>arbiter snapshot restore</c>: builds a NEW data directory from a backup, as <c>etcdctl snapshot
/// restore</c> does. Keys, values, revisions, versions, leases, alarms and transactions come from the
/// snapshot; the member and cluster ids do not: they follow from the new member's flags (name, peer
/// URLs, cluster token, founding members), exactly as <c>arbiter serve</c> computes them, so the
/// restored member is a new cluster that the old members cannot mistake for theirs. Nor does the
/// cluster's peer secret: the restored state has none, and the new cluster's first leader proposes one.
/// </summary>
public static class SnapshotRestore
{
    /// <summary>Name of the seed snapshot in a restored cluster member's Raft snapshot folder: Raft index 0, term 0.</summary>
    internal const string SeedSnapshotFileName = "0-0";

    /// <summary>
    /// Writes <paramref name="snapshot"/> into <paramref name="dataDirectory"/>, which must not exist
    /// (or be empty): a single node's write-ahead log when <paramref name="clusterMember"/> is false,
    /// a Raft member's seed state when true (every founding member of the new cluster is restored from
    /// the same file). The directory is built beside the target and renamed into place, so a failure
    /// leaves nothing behind.
    /// </summary>
    /// <exception cref="IOException">The data directory exists and is not empty, or it cannot be written.</exception>
    public static void Restore(SnapshotFile snapshot, string dataDirectory, bool clusterMember, bool fsyncEnabled = true)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(dataDirectory);
        var target = Path.GetFullPath(dataDirectory);
        if (File.Exists(target) || (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any()))
        {
            throw new IOException($"data-dir {target} exists; restore builds a new one and never overwrites");
        }

        var parent = Path.GetDirectoryName(target) ?? throw new IOException($"data-dir {target} has no parent directory");
        Directory.CreateDirectory(parent);
        var building = Path.Combine(parent, $".{Path.GetFileName(target)}.restoring-{Guid.NewGuid():N}");
        try
        {
            var member = Path.Combine(building, "member");

            // A new cluster gets a peer secret of its own (its first leader proposes one): members of
            // the cluster the backup came from must not be able to act as members of this one. Adds
            // pending there name members of that cluster, not of this one.
            snapshot.State.ForgetPeerSecret();
            snapshot.State.ForgetPendingMemberAdds();
            if (clusterMember)
            {
                WriteRaftSeed(snapshot, Path.Combine(member, "snap"), fsyncEnabled);
            }
            else
            {
                WriteSingleNodeLog(snapshot, Path.Combine(member, "wal"), fsyncEnabled);
            }

            if (Directory.Exists(target))
            {
                Directory.Delete(target); // empty, checked above
            }

            Directory.Move(building, target);
            if (fsyncEnabled)
            {
                NativeFile.Fsync(parent);
            }
        }
        catch
        {
            if (Directory.Exists(building))
            {
                Directory.Delete(building, recursive: true);
            }

            throw;
        }
    }

    /// <summary>
    /// A single node: a write-ahead log whose first record (index 1, never replayed) is covered by a
    /// snapshot of the restored state, renumbered to continue after index 1.
    /// </summary>
    private static void WriteSingleNodeLog(SnapshotFile snapshot, string walDirectory, bool fsyncEnabled)
    {
        using var wal = WriteAheadLog.Open(new WalOptions { DirectoryPath = walDirectory, FsyncEnabled = fsyncEnabled });
        var index = wal.Append(new Command { LeasePromote = new LeasePromote() }.ToByteArray());
        wal.Flush();
        snapshot.State.RestartLogAt(index);
        wal.WriteSnapshot(index, stream => snapshot.State.WriteSnapshot(stream));
    }

    /// <summary>
    /// A cluster member: the restored state as the Raft snapshot at index 0 (what RaftStateMachine
    /// restores before the log opens), so the new cluster's log starts at 1 on top of it on every member.
    /// </summary>
    private static void WriteRaftSeed(SnapshotFile snapshot, string snapDirectory, bool fsyncEnabled)
    {
        Directory.CreateDirectory(snapDirectory);
        var path = Path.Combine(snapDirectory, SeedSnapshotFileName);
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            snapshot.State.WriteSnapshot(file);
            file.Flush(flushToDisk: fsyncEnabled);
        }

        if (fsyncEnabled)
        {
            NativeFile.Fsync(snapDirectory);
        }
    }

    /// <summary>The member id <c>arbiter serve</c> will have with these flags (cluster member or single node).</summary>
    public static ulong MemberIdFor(NodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ArbiterNode.ComputeIds(options).MemberId;
    }

    /// <summary>The cluster id a new cluster founded by <paramref name="options"/> will have.</summary>
    public static ulong ClusterIdFor(NodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Cluster is { } cluster
            ? PeerAddress.ClusterId(cluster.InitialCluster.Values.Select(PeerAddress.Parse), options.ClusterToken)
            : ArbiterNode.ComputeIds(options).ClusterId;
    }
}
