namespace Arbiter.Client;

/// <summary>How an <see cref="ArbiterClient"/> connects and retries (bindable from configuration).</summary>
public sealed class ArbiterClientOptions
{
    /// <summary>gRPC endpoints, e.g. <c>http://127.0.0.1:2379</c>; tried in order on failure.</summary>
    public IList<string> Endpoints { get; } = [];

    /// <summary>
    /// Whether the transaction SDK's calls go as messages on one long-lived stream per endpoint
    /// (<see cref="GrpcArbiterClient.TransactionSessions"/>); on by default. Turn it off behind a
    /// proxy that cuts long-lived streams.
    /// </summary>
    public bool TransactionSessions { get; set; } = true;

    /// <summary>Deadline of each call in ms unless the caller's token ends it first; 0 = none.</summary>
    public int CallTimeoutMs { get; set; } = 10_000;

    /// <summary>Extra attempts for a failed read (and for a write whose failure proves it was not sent).</summary>
    public int RetryAttemptsMax { get; set; } = 3;

    /// <summary>Pause before the first retry in ms; doubles per attempt.</summary>
    public int RetryDelayMs { get; set; } = 100;

    /// <summary>
    /// The consistency of reads that name none (null: etcd's behaviour, linearizable unless the
    /// request sets <c>serializable</c>). E.g. <see cref="Arbiter.Protocol.Consistency.ReadConsistency.Serializable"/> for a cache-like reader.
    /// </summary>
    public Arbiter.Protocol.Consistency.ReadConsistency? DefaultReadConsistency { get; set; }

    /// <summary>
    /// PEM CA bundle the server's certificate must chain to on https endpoints (etcdctl's
    /// <c>--cacert</c>); null: the system's trusted roots. The host name is checked too.
    /// </summary>
    public string? CaFile { get; set; }

    /// <summary>PEM client certificate for mutual TLS (etcdctl's <c>--cert</c>); needs <see cref="KeyFile"/>.</summary>
    public string? CertFile { get; set; }

    /// <summary>PEM private key of <see cref="CertFile"/> (etcdctl's <c>--key</c>).</summary>
    public string? KeyFile { get; set; }

    /// <summary>Default TTL of sessions (and so of locks and registrations) in seconds; etcd's default is 60.</summary>
    public int SessionTtlSeconds { get; set; } = 60;

    /// <summary>
    /// User to authenticate as when the server has auth enabled (etcd's <c>--user</c>); null: none.
    /// The client then sends etcd's token metadata and re-authenticates when the token expires or
    /// the auth store changes (<see cref="AuthTokenInterceptor"/>). gRPC connections only.
    /// </summary>
    public string? UserName { get; set; }

    /// <summary>The password of <see cref="UserName"/>.</summary>
    public string? Password { get; set; }
}
