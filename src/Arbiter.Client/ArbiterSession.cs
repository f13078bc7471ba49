using Arbiter.Protocol.Consistency;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Client;

/// <summary>
/// A consistency session (not a lease: see <see cref="Session"/> for that): it keeps a token, the
/// highest revision it has written or read, updated from every response, and sends it with every
/// read. Any member then answers only once it has applied that revision, so within the session:
/// read-your-writes, monotonic reads, and (one Raft log orders every write after everything
/// committed before it) monotonic writes and writes-follow-reads, on any member, across endpoint
/// failover, without a leader round trip. <see cref="Token"/> is a string to hand to another
/// client (a message, an HTTP header); that client's <see cref="ArbiterClient.StartSession"/> or
/// <see cref="Observe(string)"/> makes its reads see everything this session saw (causal).
/// Thread-safe. Against a real etcd the token is kept but not honoured (reads are linearizable there).
/// </summary>
public sealed class ArbiterSession
{
    private readonly Lock _gate = new();
    private ConsistencyToken? _token;

    /// <summary>Starts a session on <paramref name="client"/>, optionally from a token handed over by another client.</summary>
    /// <exception cref="ReadConsistencyException">The token is malformed.</exception>
    public ArbiterSession(ArbiterClient client, string? token = null)
    {
        Client = client ?? throw new ArgumentNullException(nameof(client));
        if (token is not null)
        {
            Observe(token);
        }
    }

    /// <summary>The client reads and writes go through.</summary>
    public ArbiterClient Client { get; }

    /// <summary>The session's token as an opaque string (null before the first response or observed token).</summary>
    public string? Token => CurrentToken?.ToString();

    /// <summary>The session's token (null before the first response or observed token).</summary>
    public ConsistencyToken? CurrentToken
    {
        get
        {
            lock (_gate)
            {
                return _token;
            }
        }
    }

    /// <summary>The level this session's reads are sent with (session, at the current token).</summary>
    public ReadConsistency Consistency => ReadConsistency.Session(CurrentToken);

    /// <summary>Takes in a token from elsewhere (another client's): later reads see at least what it covers.</summary>
    /// <exception cref="ReadConsistencyException">The token is malformed or of another cluster than this session's.</exception>
    public void Observe(string token)
    {
        try
        {
            Observe(ConsistencyToken.Parse(token));
        }
        catch (ConsistencyException e)
        {
            throw ReadConsistencyException.From(e);
        }
    }

    /// <summary>Takes in a token: the session's token becomes the later of the two.</summary>
    /// <exception cref="ReadConsistencyException">The token is of another cluster than this session's.</exception>
    public void Observe(ConsistencyToken token)
    {
        lock (_gate)
        {
            try
            {
                _token = _token is { } current ? current.Merge(token) : token;
            }
            catch (ConsistencyException e)
            {
                throw ReadConsistencyException.From(e);
            }
        }
    }

    /// <summary>Takes in what a response shows (its cluster and revision).</summary>
    public void Observe(ResponseHeader? header)
    {
        if (header is { Revision: > 0 })
        {
            Observe(new ConsistencyToken(header.ClusterId, header.Revision));
        }
    }

    /// <summary>Range through the session (or at <paramref name="consistency"/> when given; the token still moves on).</summary>
    public async Task<RangeResponse> RangeAsync(RangeRequest request, ReadConsistency? consistency = null, CancellationToken cancellationToken = default)
    {
        var response = await Client.RangeAsync(request, consistency ?? Consistency, cancellationToken).ConfigureAwait(false);
        Observe(response.Header);
        return response;
    }

    /// <summary>The key-value of <paramref name="key"/>, or null.</summary>
    public async Task<KeyValue?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        var response = await RangeAsync(new RangeRequest { Key = Keys.From(key) }, null, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? null : response.Kvs[0];
    }

    /// <summary>The value of <paramref name="key"/> as UTF-8, or null when absent.</summary>
    public async Task<string?> GetStringAsync(string key, CancellationToken cancellationToken = default) =>
        (await GetAsync(key, cancellationToken).ConfigureAwait(false))?.Value.ToStringUtf8();

    /// <summary>Every key under <paramref name="prefix"/>, in key order.</summary>
    public async Task<IReadOnlyList<KeyValue>> GetPrefixAsync(string prefix, CancellationToken cancellationToken = default) =>
        (await RangeAsync(new RangeRequest { Key = Keys.From(prefix), RangeEnd = Keys.PrefixEnd(prefix) }, null, cancellationToken).ConfigureAwait(false)).Kvs;

    /// <summary>Puts a UTF-8 value; the session's token moves to the write's revision.</summary>
    public Task<PutResponse> PutAsync(string key, string value, long leaseId = 0, CancellationToken cancellationToken = default) =>
        PutAsync(new PutRequest { Key = Keys.From(key), Value = Keys.From(value), Lease = leaseId }, cancellationToken);

    /// <summary>Any put; the session's token moves to the write's revision.</summary>
    public async Task<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default)
    {
        var response = await Client.PutAsync(request, cancellationToken).ConfigureAwait(false);
        Observe(response.Header);
        return response;
    }

    /// <summary>Deletes <paramref name="key"/>; returns how many keys were deleted.</summary>
    public async Task<long> DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        (await DeleteRangeAsync(new DeleteRangeRequest { Key = Keys.From(key) }, cancellationToken).ConfigureAwait(false)).Deleted;

    /// <summary>Any delete; the session's token moves to its revision.</summary>
    public async Task<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default)
    {
        var response = await Client.DeleteRangeAsync(request, cancellationToken).ConfigureAwait(false);
        Observe(response.Header);
        return response;
    }

    /// <summary>A transaction: a read-only one is read through the session, one that writes goes through the log; the token moves on either way.</summary>
    public async Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default)
    {
        var response = await Client.TxnAsync(request, Consistency, cancellationToken).ConfigureAwait(false);
        Observe(response.Header);
        return response;
    }

    /// <summary>
    /// Watches from the session's position: a watch from "now" starts at or after the session's
    /// revision on whichever member serves it; every event delivered moves the token on.
    /// </summary>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(string key, WatchOptions? options = null, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var watch = (options ?? new WatchOptions()) with { Consistency = Consistency };
        await foreach (var e in Client.WatchAsync(ByteString.CopyFromUtf8(key), watch, cancellationToken).ConfigureAwait(false))
        {
            // Events carry no cluster id: the token moves on once a response has given one.
            if (CurrentToken is { } token)
            {
                Observe(token with { Revision = e.Kv.ModRevision });
            }

            yield return e;
        }
    }
}
