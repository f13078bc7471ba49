using Arbiter.Client;
using Arbiter.Protocol.Etcd;

namespace Arbiter.Recipes;

/// <summary>
/// A fair counting semaphore with <see cref="MaxCount"/> permits. Waiter keys
/// <c>name/&lt;lease hex&gt;</c> queue by create revision; the first <see cref="MaxCount"/> hold a permit.
/// A waiter reads the set of keys ahead of it once, then counts their deletions on a watch (no
/// re-reads, and keys never join ahead of it). A crashed holder's permit returns when its lease expires.
/// Every participant must use the same <see cref="MaxCount"/>.
/// </summary>
public sealed class DistributedSemaphore
{
    private readonly ArbiterClient _client;
    private readonly RecipeOptions _options;

    /// <summary>A semaphore named <paramref name="name"/> with <paramref name="maxCount"/> permits.</summary>
    public DistributedSemaphore(ArbiterClient client, string name, int maxCount, RecipeOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        Name = name;
        MaxCount = maxCount;
        _options = options ?? new RecipeOptions();
    }

    /// <summary>The semaphore name (key prefix).</summary>
    public string Name { get; }

    /// <summary>How many holders at most.</summary>
    public int MaxCount { get; }

    /// <summary>Takes a permit within <paramref name="timeout"/>, or returns null.</summary>
    public Task<DistributedLockHandle?> TryAcquireAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        LockAcquirer.TryAcquireAsync(_client, _options, Name + "/", WaitTurn, timeout, cancellationToken);

    /// <summary>Takes a permit; throws <see cref="TimeoutException"/>.</summary>
    public Task<DistributedLockHandle> AcquireAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        LockAcquirer.AcquireAsync(_client, _options, Name + "/", WaitTurn, timeout, cancellationToken);

    /// <summary>How many keys (holders and waiters) are in line now.</summary>
    public async Task<long> GetQueueLengthAsync(CancellationToken cancellationToken = default) =>
        (await _client.RangeAsync(new RangeRequest { Key = Keys.From(Name + "/"), RangeEnd = Keys.PrefixEnd(Name + "/"), CountOnly = true }, cancellationToken).ConfigureAwait(false)).Count;

    private async Task<bool> WaitTurn(ArbiterClient client, long myRevision, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var prefix = Name + "/";
        var ahead = await client.RangeAsync(
            new RangeRequest { Key = Keys.From(prefix), RangeEnd = Keys.PrefixEnd(prefix), MaxCreateRevision = myRevision - 1, KeysOnly = true },
            cancellationToken).ConfigureAwait(false);
        var remaining = ahead.Kvs.Select(k => k.Key).ToHashSet();
        if (remaining.Count < MaxCount)
        {
            return true;
        }

        if (timeout == TimeSpan.Zero)
        {
            return false;
        }

        using var deadline = Timeouts.Linked(timeout, cancellationToken);
        try
        {
            var options = new WatchOptions { Prefix = true, StartRevision = ahead.Header.Revision + 1, NoPut = true };
            await foreach (var e in client.WatchAsync(prefix, options, deadline.Token).ConfigureAwait(false))
            {
                if (remaining.Remove(e.Kv.Key) && remaining.Count < MaxCount)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
        catch (WatchCompactedException)
        {
            // Deletions were compacted away: start over from a fresh read.
            return await WaitTurn(client, myRevision, timeout, cancellationToken).ConfigureAwait(false);
        }

        return false;
    }
}
