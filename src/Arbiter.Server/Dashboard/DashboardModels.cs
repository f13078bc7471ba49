namespace Arbiter.Server.Dashboard;

// The JSON the dashboard page reads (camelCase). Keys and values travel twice: as text for the
// eye (invalid UTF-8 shown as hex) and as base64 for the page to send back (binary-safe, as in
// etcd's JSON gateway).

/// <summary>A key or value: display text and exact bytes.</summary>
/// <param name="Text">UTF-8 text, or <c>0x…</c> hex when the bytes are not valid UTF-8.</param>
/// <param name="Base64">The exact bytes.</param>
/// <param name="Truncated">Whether <paramref name="Text"/> was cut short (values only).</param>
public sealed record DashboardBytes(string Text, string Base64, bool Truncated);

/// <summary>GET /ui/api/cluster: the member serving the page, its status and the members.</summary>
public sealed record DashboardCluster(
    string MemberId,
    string MemberName,
    string ClusterId,
    bool Clustered,
    bool AuthEnabled,
    string Version,
    string LeaderId,
    string? LeaderName,
    ulong RaftTerm,
    long Revision,
    long CompactRevision,
    ulong RaftCommitIndex,
    ulong RaftAppliedIndex,
    long DbSizeBytes,
    long DbSizeInUseBytes,
    IReadOnlyList<string> Alarms,
    IReadOnlyList<DashboardMember> Members,
    DateTimeOffset At);

/// <summary>One member of the cluster.</summary>
public sealed record DashboardMember(string Id, string Name, IReadOnlyList<string> PeerUrls, IReadOnlyList<string> ClientUrls, bool IsLeader, bool IsSelf);

/// <summary>GET /ui/api/keys: one level of the key tree under a prefix.</summary>
/// <param name="Prefix">The prefix listed.</param>
/// <param name="Folders">Next-level prefixes (ending in '/') with the number of keys under each.</param>
/// <param name="Keys">Keys directly at this level.</param>
/// <param name="Revision">The store revision read.</param>
/// <param name="ScannedKeys">Keys read under the prefix.</param>
/// <param name="More">Whether there were more keys than the scan limit.</param>
public sealed record DashboardKeyList(DashboardBytes Prefix, IReadOnlyList<DashboardFolder> Folders, IReadOnlyList<DashboardKey> Keys, long Revision, int ScannedKeys, bool More);

/// <summary>A next-level prefix of the key tree.</summary>
public sealed record DashboardFolder(DashboardBytes Prefix, int KeyCount);

/// <summary>A live key.</summary>
public sealed record DashboardKey(DashboardBytes Key, DashboardBytes Value, long CreateRevision, long ModRevision, long Version, string Lease);

/// <summary>GET /ui/api/key: a key's retained history, oldest first.</summary>
public sealed record DashboardKeyHistory(DashboardBytes Key, IReadOnlyList<DashboardKeyVersion> Versions, long Revision, long CompactRevision, bool More);

/// <summary>One version of a key: a PUT with its value, or a DELETE.</summary>
public sealed record DashboardKeyVersion(string Type, long ModRevision, long CreateRevision, long Version, string Lease, DashboardBytes? Value);

/// <summary>GET /ui/api/leases.</summary>
public sealed record DashboardLeases(IReadOnlyList<DashboardLease> Leases, int Total, long Revision);

/// <summary>A lease with its remaining TTL and attached keys.</summary>
public sealed record DashboardLease(string Id, long TtlSeconds, long GrantedTtlSeconds, IReadOnlyList<DashboardBytes> Keys);

/// <summary>
/// GET /ui/api/locks: the lock and election queues found in the keyspace (etcd's Lock and Election
/// services and the SDK's recipes all queue as <c>name/&lt;lease hex&gt;</c> keys bound to that
/// lease, oldest create revision first), and the transaction lock table.
/// </summary>
public sealed record DashboardLocks(IReadOnlyList<DashboardQueue> Locks, IReadOnlyList<DashboardQueue> Elections, IReadOnlyList<DashboardTableLock> TableLocks, IReadOnlyList<DashboardTransaction> Transactions, long Revision, int ScannedKeys, bool More);

/// <summary>One queue: the holder (lock owner or election leader) and the waiters behind it.</summary>
public sealed record DashboardQueue(DashboardBytes Name, DashboardQueueEntry Holder, IReadOnlyList<DashboardQueueEntry> Waiters);

/// <summary>A queued key: its fencing token is its create revision.</summary>
public sealed record DashboardQueueEntry(DashboardBytes Key, string Lease, long FencingToken, DashboardBytes Value);

/// <summary>A lock of the transaction lock table (granted or waiting).</summary>
public sealed record DashboardTableLock(long TxnId, DashboardBytes Key, DashboardBytes? RangeEnd, string Mode, bool Granted, long FencingToken, long Sequence);

/// <summary>An open interactive transaction.</summary>
public sealed record DashboardTransaction(long TxnId, string Lease, int LocksHeld, IReadOnlyList<long> WaitsFor, long OpenMs, long TimeLeftMs);

/// <summary>GET /ui/api/watches: the client watch streams open on this member.</summary>
public sealed record DashboardWatches(IReadOnlyList<DashboardWatchStream> Streams, int WatcherCount);

/// <summary>One watch stream and its watches.</summary>
public sealed record DashboardWatchStream(long StreamId, string Peer, DateTimeOffset OpenedAt, int PendingResponses, IReadOnlyList<DashboardWatch> Watches);

/// <summary>One watch: key or range (<c>Prefix</c>: every key under the key), and where it is.</summary>
public sealed record DashboardWatch(long WatchId, DashboardBytes Key, DashboardBytes? RangeEnd, bool AllFromKey, bool Prefix, long NextRevision, bool Synced, IReadOnlyList<string> Filters, bool PrevKv);

/// <summary>An error answer.</summary>
public sealed record DashboardError(string Error, bool LoginRequired);
