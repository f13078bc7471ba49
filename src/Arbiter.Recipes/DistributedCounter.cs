using System.Globalization;
using Arbiter.Client;

namespace Arbiter.Recipes;

/// <summary>An atomic 64-bit counter stored as decimal text; updates are compare-and-swap on the key's mod revision.</summary>
public sealed class DistributedCounter
{
    private readonly ArbiterClient _client;

    /// <summary>A counter at <paramref name="key"/> (absent = 0).</summary>
    public DistributedCounter(ArbiterClient client, string key)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(key);
        Key = key;
    }

    /// <summary>The counter key.</summary>
    public string Key { get; }

    /// <summary>The current value.</summary>
    public async Task<long> GetAsync(CancellationToken cancellationToken = default)
    {
        var kv = await _client.GetAsync(Key, cancellationToken).ConfigureAwait(false);
        return ValueOf(kv);
    }

    /// <summary>Adds <paramref name="delta"/> atomically; returns the new value.</summary>
    public async Task<long> AddAsync(long delta, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var kv = await _client.GetAsync(Key, cancellationToken).ConfigureAwait(false);
            var current = ValueOf(kv);
            var next = checked(current + delta);
            var response = await _client.Txn()
                .If(Cmp.ModRevision(Key) == (kv?.ModRevision ?? 0))
                .Then(Op.Put(Key, next.ToString(CultureInfo.InvariantCulture)))
                .CommitAsync(cancellationToken).ConfigureAwait(false);
            if (response.Succeeded)
            {
                return next;
            }
        }
    }

    /// <summary>Adds one; returns the new value.</summary>
    public Task<long> IncrementAsync(CancellationToken cancellationToken = default) => AddAsync(1, cancellationToken);

    private static long ValueOf(Arbiter.Protocol.Mvcc.KeyValue? kv) =>
        kv == null ? 0 : long.Parse(kv.Value.ToStringUtf8(), CultureInfo.InvariantCulture);
}

/// <summary>A value with its version (mod revision), for optimistic compare-and-set.</summary>
/// <param name="Value">The value, null when absent.</param>
/// <param name="ModRevision">The key's mod revision, 0 when absent: pass it back to <see cref="DistributedValue.TrySetAsync"/>.</param>
public sealed record VersionedValue(string? Value, long ModRevision);

/// <summary>A shared value updated by compare-and-set (Curator's SharedCount, Consul's cas).</summary>
public sealed class DistributedValue
{
    private readonly ArbiterClient _client;

    /// <summary>A value at <paramref name="key"/>.</summary>
    public DistributedValue(ArbiterClient client, string key)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(key);
        Key = key;
    }

    /// <summary>The key.</summary>
    public string Key { get; }

    /// <summary>The value and its version.</summary>
    public async Task<VersionedValue> GetAsync(CancellationToken cancellationToken = default)
    {
        var kv = await _client.GetAsync(Key, cancellationToken).ConfigureAwait(false);
        return kv == null ? new VersionedValue(null, 0) : new VersionedValue(kv.Value.ToStringUtf8(), kv.ModRevision);
    }

    /// <summary>Sets the value only if it is still at <paramref name="expectedModRevision"/> (0 = still absent); false when someone else changed it.</summary>
    public async Task<bool> TrySetAsync(string value, long expectedModRevision, CancellationToken cancellationToken = default) =>
        (await _client.Txn().If(Cmp.ModRevision(Key) == expectedModRevision).Then(Op.Put(Key, value)).CommitAsync(cancellationToken).ConfigureAwait(false)).Succeeded;

    /// <summary>Waits for the next change after <paramref name="knownModRevision"/>; false on timeout.</summary>
    public Task<bool> WaitForChangeAsync(long knownModRevision, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        _client.WaitUntilAsync(Key, kv => (kv?.ModRevision ?? 0) != knownModRevision, timeout, cancellationToken);
}
