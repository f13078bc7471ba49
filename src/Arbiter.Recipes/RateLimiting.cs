using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Threading.RateLimiting;
using Arbiter.Client;

namespace Arbiter.Recipes;

/// <summary>
/// A <see cref="RateLimiter"/> that bounds concurrency across processes with a
/// <see cref="DistributedSemaphore"/>: each lease is a permit, returned on dispose or when the holder's
/// session expires. Only one permit per lease; synchronous <c>AttemptAcquire</c> never waits (it fails
/// unless a permit is free at once, which needs a network call, so it always fails).
/// </summary>
public sealed class DistributedConcurrencyLimiter : RateLimiter
{
    private readonly DistributedSemaphore _semaphore;
    private readonly TimeSpan _queueTimeout;

    /// <summary>A limiter over <paramref name="semaphore"/>; an acquire waits at most <paramref name="queueTimeout"/> for a permit.</summary>
    public DistributedConcurrencyLimiter(DistributedSemaphore semaphore, TimeSpan queueTimeout)
    {
        _semaphore = semaphore ?? throw new ArgumentNullException(nameof(semaphore));
        _queueTimeout = Timeouts.Check(queueTimeout);
    }

    /// <inheritdoc />
    public override TimeSpan? IdleDuration => null;

    /// <inheritdoc />
    public override RateLimiterStatistics? GetStatistics() => null;

    /// <inheritdoc />
    protected override RateLimitLease AttemptAcquireCore(int permitCount) => FailedLease.Instance;

    /// <inheritdoc />
    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        if (permitCount != 1)
        {
            throw new ArgumentOutOfRangeException(nameof(permitCount), permitCount, "one permit per lease");
        }

        var handle = await _semaphore.TryAcquireAsync(_queueTimeout, cancellationToken).ConfigureAwait(false);
        return handle == null ? FailedLease.Instance : new PermitLease(handle);
    }

    private sealed class PermitLease(DistributedLockHandle handle) : RateLimitLease
    {
        public override bool IsAcquired => true;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                // RateLimitLease.Dispose is synchronous; the release is one guarded delete plus a revoke.
                handle.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A token bucket shared across processes: the key holds "tokens refillUnixMs", updated by
/// compare-and-swap. Refill uses the callers' UTC clocks, so skew between machines shifts the rate
/// slightly; the bucket never holds more than <see cref="Capacity"/> tokens.
/// </summary>
public sealed class DistributedTokenBucket
{
    private readonly ArbiterClient _client;
    private readonly TimeProvider _time;

    /// <summary>A bucket at <paramref name="key"/> holding up to <paramref name="capacity"/> tokens, refilled at <paramref name="tokensPerSecond"/>.</summary>
    public DistributedTokenBucket(ArbiterClient client, string key, int capacity, double tokensPerSecond, TimeProvider? time = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerSecond);
        Key = key;
        Capacity = capacity;
        TokensPerSecond = tokensPerSecond;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The bucket key.</summary>
    public string Key { get; }

    /// <summary>Most tokens held.</summary>
    public int Capacity { get; }

    /// <summary>Refill rate.</summary>
    public double TokensPerSecond { get; }

    /// <summary>Takes <paramref name="count"/> tokens if available now; false otherwise (nothing taken).</summary>
    public async Task<bool> TryTakeAsync(int count = 1, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        while (true)
        {
            var kv = await _client.GetAsync(Key, cancellationToken).ConfigureAwait(false);
            var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var (tokens, lastMs) = kv == null ? (Capacity, nowMs) : Parse(kv.Value.ToStringUtf8());
            var refilled = Math.Min(Capacity, tokens + (Math.Max(0, nowMs - lastMs) * TokensPerSecond / 1000.0));
            if (refilled < count)
            {
                return false;
            }

            var response = await _client.Txn()
                .If(Cmp.ModRevision(Key) == (kv?.ModRevision ?? 0))
                .Then(Op.Put(Key, Format(refilled - count, nowMs)))
                .CommitAsync(cancellationToken).ConfigureAwait(false);
            if (response.Succeeded)
            {
                return true;
            }
        }
    }

    private static (double Tokens, long LastMs) Parse(string text)
    {
        var parts = text.Split(' ');
        return (double.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
    }

    private static string Format(double tokens, long ms) => string.Create(CultureInfo.InvariantCulture, $"{tokens:R} {ms}");
}

/// <summary>The lease a limiter hands out when no permit was granted.</summary>
internal sealed class FailedLease : RateLimitLease
{
    public static readonly FailedLease Instance = new();

    public override bool IsAcquired => false;

    public override IEnumerable<string> MetadataNames => [];

    public override bool TryGetMetadata(string metadataName, [NotNullWhen(true)] out object? metadata)
    {
        metadata = null;
        return false;
    }
}
