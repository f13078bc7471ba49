namespace Arbiter.Core;

/// <summary>
/// Every limit the core enforces, in one place. Defaults match etcd's where etcd has one.
/// </summary>
public sealed record CoreLimits
{
    /// <summary>Largest request accepted, in bytes (etcd: 1.5 MiB).</summary>
    public int RequestSizeBytesMax { get; init; } = 1536 * 1024;

    /// <summary>Most operations in one txn branch, and most compares (etcd: 128); also most writes in one transaction commit.</summary>
    public int TxnOpsMax { get; init; } = 128;

    /// <summary>Largest key, in bytes. etcd bounds keys only by request size; so do we by default.</summary>
    public int KeySizeBytesMax { get; init; } = 1536 * 1024;

    /// <summary>Largest value, in bytes. etcd bounds values only by request size; so do we by default.</summary>
    public int ValueSizeBytesMax { get; init; } = 1536 * 1024;

    /// <summary>Smallest effective lease TTL in seconds; shorter requests are raised to it (etcd: ⌈1.5 × election timeout⌉ = 2).</summary>
    public long LeaseTtlSecondsMin { get; init; } = 2;

    /// <summary>Largest lease TTL in seconds (etcd: 9,000,000,000).</summary>
    public long LeaseTtlSecondsMax { get; init; } = 9_000_000_000;

    /// <summary>Most leases expired by one <c>LeaseExpire</c> command.</summary>
    public int LeasesExpiredPerCommandMax { get; init; } = 1000;

    /// <summary>How many recent request ids (and their results) the core remembers for deduplication.</summary>
    public int RequestIdsRememberedMax { get; init; } = 10_000;

    /// <summary>Space quota for the keyspace, in bytes (etcd: 2 GiB); writes past it fail with NOSPACE.</summary>
    public long QuotaBytes { get; init; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Most lock entries (held or waiting) one transaction may have.</summary>
    public int LocksPerTransactionMax { get; init; } = 1000;

    /// <summary>Most waiting requests that may overlap one key or range at once.</summary>
    public int WaitersPerLockMax { get; init; } = 1000;

    /// <summary>Most open transactions bound to one lease.</summary>
    public int TransactionsPerLeaseMax { get; init; } = 1000;

    /// <summary>Most open transactions in the whole store.</summary>
    public int TransactionsOpenMax { get; init; } = 10_000;

    /// <summary>Transaction time limit when the client asks for none, in ms.</summary>
    public long TransactionTimeLimitMsDefault { get; init; } = 60_000;

    /// <summary>Longest transaction time limit a client may ask for, in ms.</summary>
    public long TransactionTimeLimitMsMax { get; init; } = 3_600_000;

    /// <summary>Lock-wait timeout when the client asks for none, in ms.</summary>
    public long LockWaitTimeoutMsDefault { get; init; } = 30_000;

    /// <summary>Longest lock-wait timeout a client may ask for, in ms.</summary>
    public long LockWaitTimeoutMsMax { get; init; } = 3_600_000;

    /// <summary>How many finished transactions (with their commit result or abort reason) the core remembers.</summary>
    public int TransactionsFinishedRememberedMax { get; init; } = 10_000;

    /// <summary>How many optimistic-commit idempotency keys (with their results) the core remembers.</summary>
    public int IdempotencyKeysRememberedMax { get; init; } = 10_000;

    /// <summary>Largest optimistic-commit idempotency key, in bytes.</summary>
    public int IdempotencyKeySizeBytesMax { get; init; } = 64;

    /// <summary>Most read keys and ranges in one optimistic commit.</summary>
    public int OptimisticReadRangesMax { get; init; } = 1000;

    /// <summary>Longest user or role name, in UTF-8 bytes (etcd bounds names only by request size).</summary>
    public int AuthNameBytesMax { get; init; } = 1024;

    /// <summary>Most users in the auth store.</summary>
    public int AuthUsersMax { get; init; } = 10_000;

    /// <summary>Most roles in the auth store.</summary>
    public int AuthRolesMax { get; init; } = 10_000;

    /// <summary>Most key permissions one role may hold.</summary>
    public int AuthPermissionsPerRoleMax { get; init; } = 1000;

    /// <summary>Most roles one user may hold.</summary>
    public int AuthRolesPerUserMax { get; init; } = 1000;

    /// <summary>Most simple tokens remembered at once; assigning one more forgets the oldest (its holder re-authenticates).</summary>
    public int AuthTokensMax { get; init; } = 100_000;
}
