using Arbiter.Client;
using Arbiter.Recipes.Diagnostics;
using Google.Protobuf;

namespace Arbiter.Recipes;

/// <summary>
/// A barrier (etcd's recipe): while the key exists, <see cref="WaitAsync"/> blocks; releasing deletes it.
/// The key carries no lease: a holder that crashes leaves the barrier up until someone releases it.
/// </summary>
public sealed class DistributedBarrier
{
    private readonly ArbiterClient _client;

    /// <summary>A barrier on <paramref name="key"/>.</summary>
    public DistributedBarrier(ArbiterClient client, string key)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(key);
        Key = key;
    }

    /// <summary>The barrier key.</summary>
    public string Key { get; }

    /// <summary>Raises the barrier; false when it was already up.</summary>
    public async Task<bool> HoldAsync(CancellationToken cancellationToken = default) =>
        (await _client.Txn().If(Cmp.CreateRevision(Key) == 0).Then(Op.Put(Key, string.Empty)).CommitAsync(cancellationToken).ConfigureAwait(false)).Succeeded;

    /// <summary>Lowers the barrier, letting every waiter through.</summary>
    public Task ReleaseAsync(CancellationToken cancellationToken = default) => _client.DeleteAsync(Key, cancellationToken);

    /// <summary>Waits until the barrier is down; false on timeout.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        RecipeTelemetry.TraceAsync("arbiter.barrier.wait", Key, () => _client.WaitUntilAsync(Key, kv => kv == null, timeout, cancellationToken), RecipeTelemetry.PassedOrTimeout);
}

/// <summary>
/// A double barrier for <see cref="Count"/> participants: <see cref="EnterAsync"/> returns once all
/// have entered, <see cref="LeaveAsync"/> once all have left. Participants' keys live under their
/// session's lease (<c>name/waiters/&lt;lease hex&gt;</c>), so a crashed participant leaves on expiry.
/// Use a fresh name per round: the <c>name/ready</c> key stays until the last participant leaves.
/// </summary>
public sealed class DistributedDoubleBarrier
{
    private readonly ArbiterClient _client;
    private readonly Session _session;

    /// <summary>A double barrier named <paramref name="name"/> for <paramref name="count"/> participants; <paramref name="session"/> holds this participant's key.</summary>
    public DistributedDoubleBarrier(Session session, string name, int count)
    {
        _session = session ?? throw new ArgumentNullException(nameof(session));
        _client = session.Client;
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        Name = name;
        Count = count;
    }

    /// <summary>The barrier name (key prefix).</summary>
    public string Name { get; }

    /// <summary>How many participants make the barrier open.</summary>
    public int Count { get; }

    private string WaitersPrefix => Name + "/waiters/";

    private string MyKey => WaitersPrefix + Keys.LeaseHex(_session.LeaseId);

    private string ReadyKey => Name + "/ready";

    /// <summary>Enters and waits for all <see cref="Count"/> participants; false on timeout (this participant then leaves again).</summary>
    public Task<bool> EnterAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        RecipeTelemetry.TraceAsync("arbiter.barrier.enter", Name, () => EnterOnceAsync(timeout, cancellationToken), RecipeTelemetry.PassedOrTimeout);

    private async Task<bool> EnterOnceAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _client.PutAsync(MyKey, string.Empty, _session.LeaseId, cancellationToken).ConfigureAwait(false);
        var waiters = await _client.RangeAsync(new() { Key = Keys.From(WaitersPrefix), RangeEnd = Keys.PrefixEnd(WaitersPrefix), CountOnly = true }, cancellationToken).ConfigureAwait(false);
        if (waiters.Count >= Count)
        {
            await _client.PutAsync(ReadyKey, string.Empty, cancellationToken: cancellationToken).ConfigureAwait(false);
            return true;
        }

        if (await _client.WaitUntilAsync(ReadyKey, kv => kv != null, timeout, cancellationToken).ConfigureAwait(false))
        {
            return true;
        }

        await _client.DeleteAsync(MyKey, CancellationToken.None).ConfigureAwait(false);
        return false;
    }

    /// <summary>Leaves and waits until every participant has left; false on timeout.</summary>
    public Task<bool> LeaveAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        RecipeTelemetry.TraceAsync("arbiter.barrier.leave", Name, () => LeaveOnceAsync(timeout, cancellationToken), RecipeTelemetry.PassedOrTimeout);

    private async Task<bool> LeaveOnceAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _client.DeleteAsync(MyKey, cancellationToken).ConfigureAwait(false);
        if (!await _client.WaitUntilPrefixAsync(WaitersPrefix, kvs => kvs.Count == 0, timeout, cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        await _client.DeleteAsync(ReadyKey, cancellationToken).ConfigureAwait(false);
        return true;
    }
}

/// <summary>
/// A countdown latch: initialized to N, counted down atomically (compare-and-swap on the key's mod
/// revision), and waited on by watch until it reaches 0. The key carries no lease.
/// </summary>
public sealed class DistributedCountdownLatch
{
    private readonly ArbiterClient _client;

    /// <summary>A latch stored at <paramref name="key"/>.</summary>
    public DistributedCountdownLatch(ArbiterClient client, string key)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(key);
        Key = key;
    }

    /// <summary>The latch key (value: the remaining count as decimal text).</summary>
    public string Key { get; }

    /// <summary>Sets the count to <paramref name="count"/> if the latch does not exist yet; false when it did.</summary>
    public async Task<bool> TrySetCountAsync(long count, CancellationToken cancellationToken = default) =>
        (await _client.Txn().If(Cmp.CreateRevision(Key) == 0).Then(Op.Put(Key, Format(count))).CommitAsync(cancellationToken).ConfigureAwait(false)).Succeeded;

    /// <summary>The remaining count (0 when the latch does not exist).</summary>
    public async Task<long> GetCountAsync(CancellationToken cancellationToken = default)
    {
        var kv = await _client.GetAsync(Key, cancellationToken).ConfigureAwait(false);
        return kv == null ? 0 : Parse(kv.Value);
    }

    /// <summary>Decrements by one unless already 0; returns the count after.</summary>
    public async Task<long> CountDownAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var kv = await _client.GetAsync(Key, cancellationToken).ConfigureAwait(false);
            if (kv == null)
            {
                return 0;
            }

            var count = Parse(kv.Value);
            if (count <= 0)
            {
                return 0;
            }

            var response = await _client.Txn().If(Cmp.ModRevision(Key) == kv.ModRevision).Then(Op.Put(Key, Format(count - 1))).CommitAsync(cancellationToken).ConfigureAwait(false);
            if (response.Succeeded)
            {
                return count - 1;
            }
        }
    }

    /// <summary>Waits until the count is 0 (or the latch is deleted); false on timeout.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        RecipeTelemetry.TraceAsync("arbiter.latch.wait", Key, () => _client.WaitUntilAsync(Key, kv => kv == null || Parse(kv.Value) <= 0, timeout, cancellationToken), RecipeTelemetry.PassedOrTimeout);

    private static string Format(long count) => count.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static long Parse(ByteString value) => long.Parse(value.ToStringUtf8(), System.Globalization.CultureInfo.InvariantCulture);
}
