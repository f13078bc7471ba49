using System.Diagnostics;
using Arbiter.Client.Diagnostics;
using Grpc.Core;

namespace Arbiter.Client;

/// <summary>
/// A lease kept alive in the background (etcd's concurrency.Session). Keys written under
/// <see cref="LeaseId"/> live as long as the session. <see cref="LostToken"/> fires when the server
/// says the lease is gone, or when no keep-alive has succeeded for a whole TTL (the lease must be
/// presumed expired). Disposing stops the keep-alives and revokes the lease.
/// </summary>
public sealed class Session : IAsyncDisposable
{
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private Task _keepAlive = Task.CompletedTask;
    private long _lastRenewedTimestamp;
    private int _disposed;

    private Session(ArbiterClient client, long leaseId, TimeSpan ttl)
    {
        Client = client;
        LeaseId = leaseId;
        Ttl = ttl;
        _lastRenewedTimestamp = Stopwatch.GetTimestamp();
    }

    /// <summary>The client the session belongs to.</summary>
    public ArbiterClient Client { get; }

    /// <summary>The lease id.</summary>
    public long LeaseId { get; }

    /// <summary>The lease TTL.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Fires when the lease is (or must be presumed) gone. Never fires after a clean dispose.</summary>
    public CancellationToken LostToken => _lost.Token;

    /// <summary>True once <see cref="LostToken"/> fired.</summary>
    public bool IsLost => _lost.IsCancellationRequested;

    /// <summary>Why the session was lost, when it was.</summary>
    public string? LostReason { get; private set; }

    /// <summary>Grants a lease of <paramref name="ttl"/> and starts keeping it alive every TTL/3.</summary>
    public static async Task<Session> CreateAsync(ArbiterClient client, TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var activity = ClientTelemetry.Source.StartActivity("arbiter.session.create");
        var start = Stopwatch.GetTimestamp();
        long leaseId;
        try
        {
            leaseId = await client.GrantLeaseAsync(ttl, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (activity is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, e is RpcException rpc ? rpc.StatusCode.ToString() : e.GetType().Name);
            throw;
        }

        var session = new Session(client, leaseId, TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(ttl.TotalSeconds))));
        activity?.SetTag("arbiter.lease.id", leaseId);
        activity?.SetTag("arbiter.session.ttl_s", (long)session.Ttl.TotalSeconds);
        session._lastRenewedTimestamp = start;

        // The loop outlives this call: it must not run inside (and keep alive) the create span.
        using (ExecutionContext.SuppressFlow())
        {
            session._keepAlive = Task.Run(session.KeepAliveLoopAsync, CancellationToken.None);
        }

        return session;
    }

    /// <summary>Stops keep-alives and revokes the lease (best effort: a lease that cannot be revoked expires after its TTL).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _keepAlive.ConfigureAwait(false);
        if (!IsLost)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await Client.RevokeLeaseAsync(LeaseId, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                // The server is unreachable: the lease runs out on its own.
            }
        }

        // _lost stays undisposed on purpose: handles keep reading LostToken after the session ends.
        _stop.Dispose();
    }

    private async Task KeepAliveLoopAsync()
    {
        var interval = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(100).Ticks, Ttl.Ticks / 3));
        var retryInterval = TimeSpan.FromTicks(Math.Min(interval.Ticks, TimeSpan.FromMilliseconds(250).Ticks));
        var wait = interval;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(wait, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var sent = Stopwatch.GetTimestamp();
            try
            {
                using var callTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                callTimeout.CancelAfter(interval);
                var ttlLeft = await Client.KeepAliveUntracedAsync(LeaseId, callTimeout.Token).ConfigureAwait(false);
                if (ttlLeft <= 0)
                {
                    Lose("the lease expired or was revoked");
                    return;
                }

                Volatile.Write(ref _lastRenewedTimestamp, sent);
                wait = interval;
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException && _stop.IsCancellationRequested)
            {
                // Disposed while a keep-alive was in flight (a forwarded one through a follower takes a while).
                return;
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                KeepAliveFailed(sent, e);
                wait = retryInterval;
            }

            if (Stopwatch.GetElapsedTime(Volatile.Read(ref _lastRenewedTimestamp)) >= Ttl)
            {
                Lose($"no keep-alive succeeded for the whole TTL ({Ttl.TotalSeconds:0} s)");
                return;
            }
        }
    }

    /// <summary>A failed keep-alive as a span of its own (successful ones make none).</summary>
    private void KeepAliveFailed(long sentTimestamp, Exception error)
    {
        var startTime = DateTimeOffset.UtcNow - Stopwatch.GetElapsedTime(sentTimestamp);
        using var activity = ClientTelemetry.Source.StartActivity("arbiter.session.keepalive", ActivityKind.Client, parentContext: default, startTime: startTime);
        if (activity is not null)
        {
            var code = error is RpcException rpc ? rpc.StatusCode : StatusCode.DeadlineExceeded;
            activity.SetTag("arbiter.lease.id", LeaseId);
            activity.SetTag("rpc.grpc.status_code", (int)code);
            activity.SetStatus(ActivityStatusCode.Error, code.ToString());
        }
    }

    private void Lose(string reason)
    {
        using (var activity = ClientTelemetry.Source.StartActivity("arbiter.session.lost", ActivityKind.Internal, parentContext: default))
        {
            activity?.SetTag("arbiter.lease.id", LeaseId);
            activity?.SetTag("arbiter.session.lost_reason", reason);
            activity?.SetStatus(ActivityStatusCode.Error, reason);
        }

        LostReason = reason;
        try
        {
            _lost.Cancel();
        }
        catch (AggregateException)
        {
            // A user callback threw; the token is cancelled regardless.
        }
    }
}
