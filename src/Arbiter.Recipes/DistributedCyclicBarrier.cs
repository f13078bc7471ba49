using System.Globalization;
using Arbiter.Client;
using Arbiter.Recipes.Diagnostics;

namespace Arbiter.Recipes;

/// <summary>
/// An N-party barrier that resets itself (Java's <c>CyclicBarrier</c>, .NET's <see cref="Barrier"/>
/// across processes): each of <see cref="ParticipantCount"/> parties calls
/// <see cref="SignalAndWaitAsync"/>; all are released together when the last one arrives, and the
/// barrier is ready for the next phase at once. Keys: <c>name/phase</c> holds the phase number; an
/// arrival is <c>name/arrivals/&lt;phase&gt;/&lt;lease hex&gt;</c> under the party's session lease, so
/// a party that crashes before the barrier opens stops counting when its lease expires. The last
/// arrival moves the phase on and deletes that phase's arrivals in one transaction, guarded by the
/// phase key's mod revision, so a phase opens exactly once.
/// </summary>
public sealed class DistributedCyclicBarrier
{
    private readonly ArbiterClient _client;
    private readonly Session _session;

    /// <summary>A barrier named <paramref name="name"/> for <paramref name="participantCount"/> parties; <paramref name="session"/> holds this party's arrival.</summary>
    public DistributedCyclicBarrier(Session session, string name, int participantCount)
    {
        _session = session ?? throw new ArgumentNullException(nameof(session));
        _client = session.Client;
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(participantCount, 1);
        Name = name;
        ParticipantCount = participantCount;
    }

    /// <summary>The barrier name (key prefix).</summary>
    public string Name { get; }

    /// <summary>How many parties open the barrier; every party must use the same number.</summary>
    public int ParticipantCount { get; }

    private string PhaseKey => Name + "/phase";

    /// <summary>The phase parties are gathering for now (0 before the barrier first opens).</summary>
    public async Task<long> GetCurrentPhaseNumberAsync(CancellationToken cancellationToken = default) =>
        await _client.GetAsync(PhaseKey, cancellationToken).ConfigureAwait(false) is { } kv ? Parse(kv) : 0;

    /// <summary>
    /// Arrives and waits until all <see cref="ParticipantCount"/> parties have arrived; returns the
    /// phase number that opened. With <paramref name="timeout"/> (default: forever) this party
    /// withdraws its arrival when time runs out and throws <see cref="TimeoutException"/> (unless the
    /// barrier opened meanwhile: then it returns as the others do).
    /// </summary>
    public Task<long> SignalAndWaitAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        RecipeTelemetry.TraceAsync("arbiter.barrier.signal_and_wait", Name, () => SignalAndWaitOnceAsync(timeout, cancellationToken), static phase => "passed");

    private async Task<long> SignalAndWaitOnceAsync(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var (phase, phaseModRevision) = await ArriveAsync(cancellationToken).ConfigureAwait(false);
        var arrivals = ArrivalsPrefix(phase);
        var count = await _client.RangeAsync(new() { Key = Keys.From(arrivals), RangeEnd = Keys.PrefixEnd(arrivals), CountOnly = true }, cancellationToken).ConfigureAwait(false);
        if (count.Count >= ParticipantCount)
        {
            // The last to arrive opens this phase (if two see the full count at once, one commits).
            await _client.Txn()
                .If(Cmp.ModRevision(PhaseKey) == phaseModRevision)
                .Then(Op.Put(PhaseKey, Format(phase + 1)), Op.DeletePrefix(arrivals))
                .CommitAsync(cancellationToken).ConfigureAwait(false);
            return phase;
        }

        var wait = timeout ?? Timeout.InfiniteTimeSpan;
        if (await _client.WaitUntilAsync(PhaseKey, kv => kv is not null && kv.ModRevision != phaseModRevision, wait, cancellationToken).ConfigureAwait(false))
        {
            return phase;
        }

        // Withdraw, unless the phase opened just now.
        var withdrawn = await _client.Txn()
            .If(Cmp.ModRevision(PhaseKey) == phaseModRevision)
            .Then(Op.Delete(MyArrival(phase)))
            .CommitAsync(CancellationToken.None).ConfigureAwait(false);
        return withdrawn.Succeeded
            ? throw new TimeoutException($"barrier {Name}: phase {phase} did not open within {wait.TotalMilliseconds:0} ms ({count.Count} of {ParticipantCount} parties had arrived when this one did)")
            : phase;
    }

    /// <summary>Puts this party's arrival into the current phase; returns the phase and the phase key's mod revision.</summary>
    private async Task<(long Phase, long ModRevision)> ArriveAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var kv = await _client.GetAsync(PhaseKey, cancellationToken).ConfigureAwait(false);
            if (kv is null)
            {
                await _client.Txn().If(Cmp.CreateRevision(PhaseKey) == 0).Then(Op.Put(PhaseKey, Format(0))).CommitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            var phase = Parse(kv);
            var arrived = await _client.Txn()
                .If(Cmp.ModRevision(PhaseKey) == kv.ModRevision)
                .Then(Op.Put(MyArrival(phase), string.Empty, _session.LeaseId))
                .CommitAsync(cancellationToken).ConfigureAwait(false);
            if (arrived.Succeeded)
            {
                return (phase, kv.ModRevision);
            }

            // The phase opened between the read and the put: arrive in the new one.
        }
    }

    private string ArrivalsPrefix(long phase) => $"{Name}/arrivals/{Format(phase)}/";

    private string MyArrival(long phase) => ArrivalsPrefix(phase) + Keys.LeaseHex(_session.LeaseId);

    private static string Format(long phase) => phase.ToString(CultureInfo.InvariantCulture);

    private static long Parse(Protocol.Mvcc.KeyValue kv) => long.Parse(kv.Value.ToStringUtf8(), CultureInfo.InvariantCulture);
}
