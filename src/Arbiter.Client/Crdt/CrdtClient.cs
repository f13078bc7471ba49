using System.Runtime.CompilerServices;
using System.Text;
using Arbiter.Protocol.Crdt;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Client.Crdt;

/// <summary>How many replicas a typed CRDT call writes to or reads from, and how long it waits for them.</summary>
public sealed record CrdtCallOptions
{
    /// <summary>Replicas an update must reach before it returns (default: this member only).</summary>
    public CrdtWriteLevel Write { get; init; } = CrdtWriteLevel.WriteLocal;

    /// <summary>Replicas a read merges (default: this member only).</summary>
    public CrdtReadLevel Read { get; init; } = CrdtReadLevel.ReadLocal;

    /// <summary>How long a majority or all call waits for the other replicas, in ms; 0 is the server's default.</summary>
    public uint TimeoutMs { get; init; }
}

/// <summary>
/// The eventual tier's typed SDK: <c>client.Crdt.Counter("likes")</c>, sets, registers, maps and
/// flags (see docs/crdt.md). The client carries a causal token from every answer to the next
/// update, so that a last-writer-wins write it makes after a read is ordered after what it read,
/// even on a member whose clock runs behind. Thread-safe.
/// </summary>
/// <remarks>
/// Only an Arbiter server (or an embedded node) has the eventual tier. On a real etcd every call
/// throws <see cref="NotSupportedException"/>: emulating CRDTs with compare-and-swap on one key
/// would give up the point of them, availability under partition.
/// </remarks>
public sealed class CrdtClient
{
    private readonly ICrdtClient? _raw;
    private readonly object _gate = new();
    private HlcTimestamp? _causalToken;

    /// <summary>Typed calls over <paramref name="raw"/> (an <see cref="ICrdtClient"/>, or any client, which then throws <see cref="NotSupportedException"/>).</summary>
    public CrdtClient(IArbiterClient raw, CrdtCallOptions? defaults = null)
    {
        ArgumentNullException.ThrowIfNull(raw);
        _raw = raw as ICrdtClient;
        Defaults = defaults ?? new CrdtCallOptions();
    }

    /// <summary>Write and read levels used when a call names none.</summary>
    public CrdtCallOptions Defaults { get; }

    /// <summary>The newest causal token this client has seen (null before its first call).</summary>
    public HlcTimestamp? CausalToken
    {
        get
        {
            lock (_gate)
            {
                return _causalToken?.Clone();
            }
        }
    }

    /// <summary>
    /// Carries a causal token from elsewhere (another client's <see cref="CausalToken"/>, passed
    /// along with a request): this client's next last-writer-wins write is ordered after it.
    /// </summary>
    public void Observe(HlcTimestamp? token)
    {
        if (token is null)
        {
            return;
        }

        lock (_gate)
        {
            // Hybrid logical clock order: wall milliseconds, then the logical counter.
            if (_causalToken is null || (token.WallMs, token.Logical).CompareTo((_causalToken.WallMs, _causalToken.Logical)) > 0)
            {
                _causalToken = token.Clone();
            }
        }
    }

    /// <summary>A counter with increments and decrements (PN-Counter).</summary>
    public CrdtCounter Counter(string key) => new(this, key, CrdtType.PnCounter);

    /// <summary>A grow-only counter (G-Counter): cheaper, increments only.</summary>
    public CrdtCounter GrowOnlyCounter(string key) => new(this, key, CrdtType.GCounter);

    /// <summary>An add-wins set of byte strings (OR-Set).</summary>
    public CrdtSet Set(string key) => new(this, key);

    /// <summary>A last-writer-wins register stamped with a hybrid logical clock.</summary>
    public CrdtLwwRegister LwwRegister(string key) => new(this, key);

    /// <summary>A multi-value register: concurrent writes come back as siblings.</summary>
    public CrdtMvRegister MvRegister(string key) => new(this, key);

    /// <summary>An enable-wins flag.</summary>
    public CrdtFlag Flag(string key) => new(this, key);

    /// <summary>An observed-remove map of fields to nested CRDTs.</summary>
    public CrdtMap Map(string key) => new(this, key);

    /// <summary>Applies one operation to <paramref name="key"/> (the raw call with this client's causal token).</summary>
    public async Task<CrdtUpdateResponse> UpdateAsync(string key, CrdtType type, CrdtOperation operation, CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var call = options ?? Defaults;
        var request = new CrdtUpdateRequest { Key = key, Type = type, Operation = operation, Write = call.Write, TimeoutMs = call.TimeoutMs, CausalToken = CausalToken };
        var response = await Invoke(raw => raw.CrdtUpdateAsync(request, cancellationToken)).ConfigureAwait(false);
        Observe(response.CausalToken);
        return response;
    }

    /// <summary>Reads <paramref name="key"/>'s merged value (type unspecified if no replica read has it).</summary>
    public async Task<CrdtValue> GetAsync(string key, CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var call = options ?? Defaults;
        var request = new CrdtGetRequest { Key = key, Read = call.Read, TimeoutMs = call.TimeoutMs };
        var response = await Invoke(raw => raw.CrdtGetAsync(request, cancellationToken)).ConfigureAwait(false);
        Observe(response.CausalToken);
        return response.Value ?? new CrdtValue();
    }

    /// <summary>The key's merged value on the member now and after every change there, until cancelled.</summary>
    public async IAsyncEnumerable<CrdtValue> WatchAsync(string key, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var raw = _raw ?? throw NotSupported();
        await using var changes = raw.CrdtWatchAsync(new CrdtWatchRequest { Key = key }, cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await changes.MoveNextAsync().ConfigureAwait(false))
                {
                    yield break;
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
            {
                throw NotSupported(e);
            }

            Observe(changes.Current.CausalToken);
            yield return changes.Current.Value ?? new CrdtValue();
        }
    }

    private async Task<T> Invoke<T>(Func<ICrdtClient, Task<T>> call)
    {
        var raw = _raw ?? throw NotSupported();
        try
        {
            return await call(raw).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            throw NotSupported(e);
        }
    }

    private static NotSupportedException NotSupported(Exception? inner = null) => new(
        "The eventual tier (CRDTs) needs an Arbiter server or an embedded node; this endpoint does not serve arbiter.v1.Crdt (a real etcd?).", inner);

    internal static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    internal static string Text(ByteString bytes) => Encoding.UTF8.GetString(bytes.Span);
}
