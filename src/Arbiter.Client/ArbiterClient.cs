using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Arbiter.Client.Diagnostics;
using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Client;

/// <summary>
/// The typed client: string or byte keys, transactions, resumable watches, leases and sessions,
/// per-call deadlines and safe retries, over any <see cref="IArbiterClient"/> (gRPC to Arbiter or
/// etcd, or an embedded node: <c>ArbiterClient.ForNode</c> in the Arbiter.Embedded package). Thread-safe; share one per process.
/// </summary>
public sealed class ArbiterClient : IAsyncDisposable
{
    private readonly bool _ownsRaw;
    private Crdt.CrdtClient? _crdt;

    /// <summary>Wraps <paramref name="raw"/>; disposes it with this client when <paramref name="ownsRaw"/>.</summary>
    public ArbiterClient(IArbiterClient raw, ArbiterClientOptions? options = null, bool ownsRaw = true)
    {
        Raw = raw ?? throw new ArgumentNullException(nameof(raw));
        Options = options ?? new ArbiterClientOptions();
        _ownsRaw = ownsRaw;
    }

    /// <summary>The protocol-level client underneath.</summary>
    public IArbiterClient Raw { get; }

    /// <summary>The eventual tier: CRDT counters, sets, registers, maps and flags (docs/crdt.md).</summary>
    public Crdt.CrdtClient Crdt => LazyInitializer.EnsureInitialized(ref _crdt, () => new Crdt.CrdtClient(Raw));

    /// <summary>Deadlines, retries and session defaults.</summary>
    public ArbiterClientOptions Options { get; }

    /// <summary>
    /// Connects over gRPC to <paramref name="options"/>' endpoints (failover in order); https
    /// endpoints use <see cref="ArbiterClientOptions.CaFile"/>, <see cref="ArbiterClientOptions.CertFile"/>
    /// and <see cref="ArbiterClientOptions.KeyFile"/> as etcdctl's <c>--cacert/--cert/--key</c>.
    /// Throws <see cref="Protocol.Security.TlsConfigurationException"/> when a TLS file is missing or wrong.
    /// </summary>
    public static ArbiterClient Connect(ArbiterClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var tls = ClientTls.Load(options);
        var raw = new GrpcArbiterClient([.. options.Endpoints], tls is null ? null : tls.CreateHandler, options.UserName, options.Password) { TransactionSessions = options.TransactionSessions };
        return new ArbiterClient(raw, options);
    }

    /// <summary>Connects over gRPC to <paramref name="endpoints"/> with default options.</summary>
    public static ArbiterClient Connect(params string[] endpoints)
    {
        var options = new ArbiterClientOptions();
        foreach (var endpoint in endpoints)
        {
            options.Endpoints.Add(endpoint);
        }

        return Connect(options);
    }

    /// <summary>The key-value of <paramref name="key"/>, or null.</summary>
    public async Task<KeyValue?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        var response = await RangeAsync(new RangeRequest { Key = Keys.From(key) }, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? null : response.Kvs[0];
    }

    /// <summary>The key-value of <paramref name="key"/>, or null.</summary>
    public async Task<KeyValue?> GetAsync(ByteString key, CancellationToken cancellationToken = default)
    {
        var response = await RangeAsync(new RangeRequest { Key = key }, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? null : response.Kvs[0];
    }

    /// <summary>The value of <paramref name="key"/> as UTF-8, or null when absent.</summary>
    public async Task<string?> GetStringAsync(string key, CancellationToken cancellationToken = default) =>
        (await GetAsync(key, cancellationToken).ConfigureAwait(false))?.Value.ToStringUtf8();

    /// <summary>Every key under <paramref name="prefix"/>, in key order.</summary>
    public async Task<IReadOnlyList<KeyValue>> GetPrefixAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var response = await RangeAsync(new RangeRequest { Key = Keys.From(prefix), RangeEnd = Keys.PrefixEnd(prefix) }, cancellationToken).ConfigureAwait(false);
        return response.Kvs;
    }

    /// <summary>Any range request; retried on failure (reads are safe to repeat).</summary>
    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default) =>
        RangeAsync(request, Options.DefaultReadConsistency, cancellationToken);

    /// <summary>
    /// Any range request at a consistency level (null: etcd's choice by the request's flag);
    /// retried on failure, on the next endpoint when the member was behind the level.
    /// </summary>
    public Task<RangeResponse> RangeAsync(RangeRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default) =>
        RunAsync(RpcMethod.Range, request?.Key, ct => Raw.RangeAsync(request!, consistency, ct), isIdempotent: true, cancellationToken);

    /// <summary>The key-value of <paramref name="key"/> read at <paramref name="consistency"/>, or null.</summary>
    public async Task<KeyValue?> GetAsync(string key, ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        var response = await RangeAsync(new RangeRequest { Key = Keys.From(key) }, consistency, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? null : response.Kvs[0];
    }

    /// <summary>The value of <paramref name="key"/> as UTF-8 read at <paramref name="consistency"/>, or null when absent.</summary>
    public async Task<string?> GetStringAsync(string key, ReadConsistency? consistency, CancellationToken cancellationToken = default) =>
        (await GetAsync(key, consistency, cancellationToken).ConfigureAwait(false))?.Value.ToStringUtf8();

    /// <summary>Every key under <paramref name="prefix"/> read at <paramref name="consistency"/>, in key order.</summary>
    public async Task<IReadOnlyList<KeyValue>> GetPrefixAsync(string prefix, ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        var response = await RangeAsync(new RangeRequest { Key = Keys.From(prefix), RangeEnd = Keys.PrefixEnd(prefix) }, consistency, cancellationToken).ConfigureAwait(false);
        return response.Kvs;
    }

    /// <summary>
    /// A session whose reads see its own writes and never go back in time, on any member and
    /// across endpoint failover, without a leader round trip (see <see cref="ArbiterSession"/>).
    /// Start it from a token handed over by another client to see what that client saw (causal).
    /// </summary>
    public ArbiterSession StartSession(string? token = null) => new(this, token);

    /// <summary>Puts a UTF-8 value, optionally under a lease.</summary>
    public Task<PutResponse> PutAsync(string key, string value, long leaseId = 0, CancellationToken cancellationToken = default) =>
        PutAsync(new PutRequest { Key = Keys.From(key), Value = Keys.From(value), Lease = leaseId }, cancellationToken);

    /// <summary>Puts raw bytes, optionally under a lease.</summary>
    public Task<PutResponse> PutAsync(ByteString key, ByteString value, long leaseId = 0, CancellationToken cancellationToken = default) =>
        PutAsync(new PutRequest { Key = key, Value = value, Lease = leaseId }, cancellationToken);

    /// <summary>Any put; retried only when the failure proves it was not sent.</summary>
    public Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default) =>
        RunAsync(RpcMethod.Put, request?.Key, ct => Raw.PutAsync(request!, ct), isIdempotent: false, cancellationToken);

    /// <summary>Deletes <paramref name="key"/>; returns how many keys were deleted (0 or 1).</summary>
    public async Task<long> DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        (await DeleteRangeAsync(new DeleteRangeRequest { Key = Keys.From(key) }, cancellationToken).ConfigureAwait(false)).Deleted;

    /// <summary>Deletes every key under <paramref name="prefix"/>; returns how many.</summary>
    public async Task<long> DeletePrefixAsync(string prefix, CancellationToken cancellationToken = default) =>
        (await DeleteRangeAsync(new DeleteRangeRequest { Key = Keys.From(prefix), RangeEnd = Keys.PrefixEnd(prefix) }, cancellationToken).ConfigureAwait(false)).Deleted;

    /// <summary>Any delete; retried only when the failure proves it was not sent.</summary>
    public Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default) =>
        RunAsync(RpcMethod.DeleteRange, request?.Key, ct => Raw.DeleteRangeAsync(request!, ct), isIdempotent: false, cancellationToken);

    /// <summary>Starts a transaction: <c>Txn().If(Cmp.Version("k") == 0).Then(Op.Put("k", "v")).CommitAsync()</c>.</summary>
    public TxnBuilder Txn() => new(this);

    /// <summary>Any transaction; retried only when the failure proves it was not sent.</summary>
    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default) =>
        RunAsync(RpcMethod.Txn, null, ct => Raw.TxnAsync(request, Options.DefaultReadConsistency, ct), isIdempotent: false, cancellationToken);

    /// <summary>
    /// Any transaction; a read-only one is served at <paramref name="consistency"/> and retried like
    /// a read, one that writes goes through the log and is retried only when it was not sent.
    /// </summary>
    public Task<TxnResponse> TxnAsync(TxnRequest request, ReadConsistency? consistency, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return RunAsync(RpcMethod.Txn, null, ct => Raw.TxnAsync(request, consistency, ct), isIdempotent: Arbiter.Protocol.TxnRequests.IsReadOnly(request), cancellationToken);
    }

    /// <summary>Compacts history up to <paramref name="revision"/>.</summary>
    public Task<CompactionResponse> CompactAsync(long revision, CancellationToken cancellationToken = default) =>
        RunAsync(RpcMethod.Compact, null, ct => Raw.CompactAsync(new CompactionRequest { Revision = revision }, ct), isIdempotent: false, cancellationToken);

    /// <summary>The store's current revision.</summary>
    public async Task<long> GetRevisionAsync(CancellationToken cancellationToken = default) =>
        (await RangeAsync(new RangeRequest { Key = Keys.From("\0"), CountOnly = true }, cancellationToken).ConfigureAwait(false)).Header.Revision;

    /// <summary>Grants a lease of <paramref name="ttl"/> (whole seconds, at least 1); returns its id.</summary>
    public async Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        var seconds = Math.Max(1, (long)Math.Ceiling(ttl.TotalSeconds));
        var response = await RunAsync(RpcMethod.LeaseGrant, null, ct => Raw.LeaseGrantAsync(new LeaseGrantRequest { TTL = seconds }, ct), isIdempotent: false, cancellationToken).ConfigureAwait(false);
        return response.ID;
    }

    /// <summary>Revokes a lease, deleting its keys. A lease already gone is not an error.</summary>
    public async Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        try
        {
            await RunAsync(RpcMethod.LeaseRevoke, null, ct => Raw.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, ct), isIdempotent: true, cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            // Expired or revoked already: the goal (lease gone) holds.
        }
    }

    /// <summary>Renews a lease once; returns the TTL left in seconds, 0 when the lease is gone.</summary>
    public async Task<long> KeepAliveOnceAsync(long leaseId, CancellationToken cancellationToken = default) =>
        (await RunAsync(RpcMethod.LeaseKeepAlive, null, ct => Raw.LeaseKeepAliveOnceAsync(new LeaseKeepAliveRequest { ID = leaseId }, ct), isIdempotent: true, cancellationToken).ConfigureAwait(false)).TTL;

    /// <summary>Seconds left on a lease, -1 when it does not exist.</summary>
    public async Task<long> TimeToLiveAsync(long leaseId, CancellationToken cancellationToken = default) =>
        (await RunAsync(RpcMethod.LeaseTimeToLive, null, ct => Raw.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = leaseId }, ct), isIdempotent: true, cancellationToken).ConfigureAwait(false)).TTL;

    /// <summary>Grants a lease and keeps it alive in the background until the session is disposed or lost.</summary>
    public Task<Session> CreateSessionAsync(TimeSpan? ttl = null, CancellationToken cancellationToken = default) =>
        Session.CreateAsync(this, ttl ?? TimeSpan.FromSeconds(Options.SessionTtlSeconds), cancellationToken);

    /// <summary>
    /// Watches <paramref name="key"/> (or a prefix) as a stream of events. When the stream breaks the
    /// watch is re-created from the revision after the last event seen, so nothing is missed or
    /// repeated; if that revision was compacted meanwhile, <see cref="WatchCompactedException"/> is thrown.
    /// </summary>
    public IAsyncEnumerable<WatchEvent> WatchAsync(string key, WatchOptions? options = null, CancellationToken cancellationToken = default) =>
        WatchAsync(Keys.From(key), options ?? new WatchOptions(), cancellationToken);

    /// <summary>Watches raw key bytes; see <see cref="WatchAsync(string, WatchOptions?, CancellationToken)"/>.</summary>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(ByteString key, WatchOptions options, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var next = options.StartRevision;
        var rangeEnd = options.Prefix ? Keys.PrefixEnd(key) : ByteString.Empty;
        while (true)
        {
            // The span covers establishing the watch (open, create, "created"), not the stream's life.
            var establishTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
            var establish = ClientTelemetry.StartCall(RpcMethod.Watch, Raw, key);
            var session = Raw.OpenWatch(options.Consistency);
            await using (session.ConfigureAwait(false))
            {
                var create = new WatchCreateRequest { Key = key, RangeEnd = rangeEnd, StartRevision = next, PrevKv = options.PrevKv };
                if (options.NoPut)
                {
                    create.Filters.Add(WatchCreateRequest.Types.FilterType.Noput);
                }

                if (options.NoDelete)
                {
                    create.Filters.Add(WatchCreateRequest.Types.FilterType.Nodelete);
                }

                var broken = false;
                IAsyncEnumerator<WatchResponse>? responses = null;
                try
                {
                    await session.CreateAsync(create, cancellationToken).ConfigureAwait(false);
                    responses = session.ReadAllAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
                }
                catch (RpcException e) when (!cancellationToken.IsCancellationRequested && e is not ReadConsistencyException { Kind: not ConsistencyErrorKind.MemberBehind and not ConsistencyErrorKind.StalenessBoundExceeded })
                {
                    broken = true;
                    ClientTelemetry.Finished(establish, RpcMethod.Watch, establishTimestamp, e);
                    establish = null;
                }
                catch (Exception e)
                {
                    ClientTelemetry.Finished(establish, RpcMethod.Watch, establishTimestamp, e);
                    throw;
                }

                while (!broken)
                {
                    WatchResponse response;
                    try
                    {
                        if (!await responses!.MoveNextAsync().ConfigureAwait(false))
                        {
                            break;
                        }

                        response = responses.Current;
                    }
                    catch (RpcException e) when (!cancellationToken.IsCancellationRequested && e is not ReadConsistencyException { Kind: not ConsistencyErrorKind.MemberBehind and not ConsistencyErrorKind.StalenessBoundExceeded })
                    {
                        // Broken stream, or a member behind the level: start again (on the next endpoint).
                        ClientTelemetry.Finished(establish, RpcMethod.Watch, establishTimestamp, e);
                        establish = null;
                        break;
                    }
                    catch (Exception e) when (establish is not null)
                    {
                        ClientTelemetry.Finished(establish, RpcMethod.Watch, establishTimestamp, e);
                        throw;
                    }

                    if (establish is not null && response.Created)
                    {
                        establish.SetTag("arbiter.watch.start_revision", next == 0 ? response.Header.Revision + 1 : next);
                        ClientTelemetry.Finished(establish, RpcMethod.Watch, establishTimestamp, null);
                        establish = null;
                    }

                    if (response.CompactRevision > 0)
                    {
                        throw new WatchCompactedException(next, response.CompactRevision);
                    }

                    if (response.Canceled)
                    {
                        throw new RpcException(new Status(StatusCode.Cancelled, $"watch canceled by the server: {response.CancelReason}"));
                    }

                    if (response.Created && next == 0)
                    {
                        // "From now" means after the revision current at creation; a resume must start there.
                        next = response.Header.Revision + 1;
                    }

                    foreach (var e in response.Events)
                    {
                        next = e.Kv.ModRevision + 1;
                        yield return new WatchEvent(
                            e.Type == Event.Types.EventType.Put ? WatchEventKind.Put : WatchEventKind.Delete,
                            e.Kv,
                            e.PrevKv);
                    }

                    if (response.Events.Count == 0 && !response.Created && response.Header.Revision >= next)
                    {
                        // A progress notification: everything up to the header revision was delivered.
                        next = response.Header.Revision + 1;
                    }
                }

                if (responses != null)
                {
                    await responses.DisposeAsync().ConfigureAwait(false);
                }

                // The stream ended before "created" (cancelled, or closed by the server).
                ClientTelemetry.Finished(establish, RpcMethod.Watch, establishTimestamp, cancellationToken.IsCancellationRequested ? new OperationCanceledException(cancellationToken) : null);
                establish = null;
            }

            cancellationToken.ThrowIfCancellationRequested();
            await Task.Delay(options.ReconnectDelayMs, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_ownsRaw)
        {
            await Raw.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>True when <paramref name="e"/> shows the request never reached a server (safe to send again).</summary>
    public static bool ProvesNotSent(RpcException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e.StatusCode != StatusCode.Unavailable)
        {
            return false;
        }

        for (Exception? inner = e.InnerException ?? e.Status.DebugException; inner != null; inner = inner.InnerException)
        {
            if (inner is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostNotFound or SocketError.NetworkUnreachable or SocketError.HostUnreachable })
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Renews a lease once for a session's keep-alive loop: measured, but without a span of its own
    /// (a span every TTL/3 per session would bury the calls worth seeing; the session records failures).
    /// </summary>
    internal async Task<long> KeepAliveUntracedAsync(long leaseId, CancellationToken cancellationToken) =>
        (await RunAsync(RpcMethod.LeaseKeepAlive, null, ct => Raw.LeaseKeepAliveOnceAsync(new LeaseKeepAliveRequest { ID = leaseId }, ct), isIdempotent: true, cancellationToken, traced: false).ConfigureAwait(false)).TTL;

    /// <summary>
    /// Applies the per-call deadline and the retry policy to one call, as one client span (retries
    /// are events on it) and one duration measurement.
    /// </summary>
    private async Task<T> RunAsync<T>(RpcMethod method, ByteString? key, Func<CancellationToken, Task<T>> call, bool isIdempotent, CancellationToken cancellationToken, bool traced = true)
    {
        var startTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
        var activity = traced ? ClientTelemetry.StartCall(method, Raw, key) : null;
        var delayMs = Options.RetryDelayMs;
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                if (Options.CallTimeoutMs > 0)
                {
                    deadline.CancelAfter(Options.CallTimeoutMs);
                }

                try
                {
                    var result = await call(deadline.Token).ConfigureAwait(false);
                    ClientTelemetry.Finished(activity, method, startTimestamp, null);
                    return result;
                }
                catch (Exception e) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested && e is OperationCanceledException or RpcException)
                {
                    throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"call did not finish within {Options.CallTimeoutMs} ms"));
                }
                catch (RpcException e) when (attempt < Options.RetryAttemptsMax
                    && !cancellationToken.IsCancellationRequested
                    && (isIdempotent ? e.StatusCode is StatusCode.Unavailable : ProvesNotSent(e)))
                {
                    ClientTelemetry.Retried(activity, method, e, attempt + 1, delayMs);
                    await Task.Delay(delayMs, cancellationToken).ConfigureAwait(false);
                    delayMs *= 2;
                }
            }
        }
        catch (Exception e)
        {
            ClientTelemetry.Finished(activity, method, startTimestamp, e);
            throw;
        }
    }
}
