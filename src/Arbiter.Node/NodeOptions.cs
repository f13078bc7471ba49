using Arbiter.Core;
using Arbiter.Node.Cluster;

namespace Arbiter.Node;

/// <summary>How an <see cref="ArbiterNode"/> runs. Defaults give a single durable node like etcd's.</summary>
public sealed record NodeOptions
{
    /// <summary>Member name (etcd's <c>--name</c>).</summary>
    public string Name { get; init; } = "default";

    /// <summary>Directory for the write-ahead log and snapshots; null keeps everything in memory (nothing survives the process).</summary>
    public string? DataDirectory { get; init; }

    /// <summary>Client URLs this member advertises (MemberList, Status).</summary>
    public IReadOnlyList<string> AdvertiseClientUrls { get; init; } = ["http://127.0.0.1:2379"];

    /// <summary>Peer URLs this member advertises.</summary>
    public IReadOnlyList<string> AdvertisePeerUrls { get; init; } = ["http://127.0.0.1:2380"];

    /// <summary>Cluster token mixed into the cluster and member ids (etcd's <c>--initial-cluster-token</c>).</summary>
    public string ClusterToken { get; init; } = "arbiter-cluster";

    /// <summary>Limits the core and the API edge enforce.</summary>
    public CoreLimits Limits { get; init; } = new();

    /// <summary>Whether the log fsyncs before acknowledging. Turn off only for throwaway tests.</summary>
    public bool FsyncEnabled { get; init; } = true;

    /// <summary>
    /// Whether a single node fsyncs a batch of transaction Begin and Lock commands before it
    /// answers them (<c>--lock-grants-await-fsync</c>). Off by default: such a batch is answered
    /// once it is written to the operating system, and fsynced within a millisecond or together with
    /// the next command, before that command is answered (so before any commit that follows a grant). A killed process loses nothing; a power loss can
    /// take the last batch's grants, whose transactions then no longer exist (their commit fails,
    /// as PostgreSQL's row locks, which live in memory only, are lost with their transaction), and
    /// the node moves its transaction ids and fencing tokens past them when it starts, so none is
    /// handed out twice. A cluster always answers after a quorum has the command.
    /// </summary>
    public bool LockGrantsAwaitFsync { get; init; }

    /// <summary>
    /// Whether every version (each key's newest and its history) stays on the managed heap
    /// (<c>--keep-history-in-memory</c>). Off by default: with a data directory, a version is paged
    /// out to unlinked files under <c>member/spill</c> when written, and read back (from the bytes
    /// paged out last, <see cref="RecentValuesCacheSizeBytes"/>, or the page cache) when a read, a
    /// compare or an overwrite needs it. So a large keyspace, and the history etcd keeps
    /// by default (no compaction), grow in disk and page cache, not in the process's heap. Without a
    /// data directory everything stays in memory.
    /// </summary>
    public bool KeepHistoryInMemory { get; init; }

    /// <summary>
    /// With versions paged out: how many of the bytes paged out last stay in memory as well, so a
    /// version written lately is read back with a copy instead of a system call
    /// (<c>--recent-values-cache-bytes</c>, 4 MiB; 0: none).
    /// </summary>
    public int RecentValuesCacheSizeBytes { get; init; } = Spill.FileValueSpill.DefaultRecentSizeBytes;

    /// <summary>Most commands made durable by one fsync (group commit).</summary>
    public int BatchCommandsMax { get; init; } = 4096;

    /// <summary>Take a snapshot (and drop older log segments) after this many applied commands.</summary>
    public int SnapshotEveryEntries { get; init; } = 20_000;

    /// <summary>
    /// When more than 0, a cluster member also takes a snapshot once the Raft log since the last one
    /// holds this many bytes of commands, or the last snapshot's size if that is larger
    /// (<c>--snapshot-log-bytes</c>; 0, the default: entries only, etcd's rule). The log's pages live
    /// in process memory by default (<c>--raft-log-pages</c>) and an entry is a batch of up to 1 MiB,
    /// so <see cref="SnapshotEveryEntries"/> entries of large values can hold gigabytes; the bound
    /// trades throughput for memory (docs/performance.md).
    /// </summary>
    public long SnapshotEveryLogBytes { get; init; }

    /// <summary>Longest the lease expiry loop sleeps between checks, in ms.</summary>
    public int LeaseCheckIntervalMsMax { get; init; } = 250;

    /// <summary>Interval of progress notifications for watches that ask for them, in ms (etcd: 10 minutes).</summary>
    public int WatchProgressNotifyIntervalMs { get; init; } = 10 * 60 * 1000;

    /// <summary>Responses queued on one watch stream before its watchers fall back to catching up from history.</summary>
    public int WatchStreamPendingResponsesMax { get; init; } = 1024;

    /// <summary>
    /// Bytes of responses queued on one watch stream before its watchers fall back to catching up
    /// from history (with <see cref="WatchStreamPendingResponsesMax"/>, what bounds the memory a
    /// stream that is not read can hold); also, past it, the stream stops reading its requests.
    /// </summary>
    public long WatchStreamPendingBytesMax { get; init; } = 8 * 1024 * 1024;

    /// <summary>
    /// Calls in flight at once on one transaction session stream (arbiter.v1 Transactions.Session);
    /// a call past it is answered ResourceExhausted at once and the stream carries on. So it also
    /// bounds the responses waiting to be written to a client that does not read them (one per
    /// call); past those, the server stops reading that stream's requests.
    /// </summary>
    public int TransactionSessionCallsInFlightMax { get; init; } = 1024;

    /// <summary>Most watches open on one watch stream (<c>--max-watches-per-stream</c>); a create past it is canceled with a reason.</summary>
    public int WatchesPerStreamMax { get; init; } = 10_000;

    /// <summary>Events read from history per catch-up step of a watcher.</summary>
    public int WatchCatchUpEventsMax { get; init; } = 1000;

    /// <summary>
    /// How long a member waits to apply the revision a session, causal, at-revision or
    /// bounded-staleness read needs before it refuses the read (typed error saying how far behind
    /// it is), in ms. Short: a client is better served by another member than by a long wait.
    /// </summary>
    public int ConsistencyWaitBudgetMs { get; init; } = 500;

    /// <summary>Raft cluster membership; null runs a single node with its local log.</summary>
    public ClusterOptions? Cluster { get; init; }

    /// <summary>Automatic compaction of the MVCC history (etcd's --auto-compaction-*); null (the default) leaves it to clients.</summary>
    public Compaction.AutoCompactionOptions? AutoCompaction { get; init; }

    /// <summary>The clock leases are measured by; the default is the machine's monotonic clock.</summary>
    public IMonotonicClock Clock { get; init; } = SystemMonotonicClock.Instance;

    /// <summary>The wall clock the eventual tier's hybrid logical clock reads (nothing else does).</summary>
    public Arbiter.Node.Crdt.IWallClock WallClock { get; init; } = Arbiter.Node.Crdt.SystemWallClock.Instance;

    /// <summary>
    /// TLS on the client port (<c>--cert-file</c>, <c>--key-file</c>, <c>--trusted-ca-file</c>,
    /// <c>--client-cert-auth</c>); null: none. The server serves it on https client URLs; a member
    /// also uses its CAs to check another member's client port when it forwards a request there.
    /// </summary>
    public Security.TlsCredentials? ClientTls { get; init; }

    /// <summary>
    /// TLS between members (<c>--peer-cert-file</c>, <c>--peer-key-file</c>,
    /// <c>--peer-trusted-ca-file</c>, <c>--peer-client-cert-auth</c>); null: members talk in clear.
    /// Covers the Raft transport, and the calls a member makes to another's client port (forwarded
    /// proposals and reads, CRDT anti-entropy), which then need an https client URL and are refused
    /// without a certificate from the peer CA.
    /// </summary>
    public Security.TlsCredentials? PeerTls { get; init; }

    /// <summary>The eventual tier (CRDT replica) on this member.</summary>
    public Arbiter.Node.Crdt.CrdtOptions Crdt { get; init; } = new();
}
