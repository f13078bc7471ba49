namespace Arbiter.Verification.Checkers;

/// <summary>One time a holder held a lock.</summary>
/// <param name="Holder">Who (a worker's number).</param>
/// <param name="Lock">The lock's name.</param>
/// <param name="Token">Its fencing token (the lock key's create revision).</param>
/// <param name="AcquiredNs">When the acquire call returned.</param>
/// <param name="ReleasedNs">When the release call was invoked (<see cref="long.MaxValue"/> if never).</param>
/// <param name="LeaseSafeUntilNs">Until when its lease certainly held: the lease grant's invocation plus its TTL.</param>
public sealed record LockHold(int Holder, string Lock, long Token, long AcquiredNs, long ReleasedNs, long LeaseSafeUntilNs)
{
    /// <summary>The end of the time it certainly held the lock.</summary>
    public long SafeEndNs => Math.Min(ReleasedNs, LeaseSafeUntilNs);
}

/// <summary>One write that reached the harness's token-checking store, in the order it arrived.</summary>
/// <param name="AtNs">When it arrived.</param>
/// <param name="Resource">What it wrote.</param>
/// <param name="Holder">Who sent it.</param>
/// <param name="Token">The fencing token it carried.</param>
/// <param name="Value">What it wrote.</param>
/// <param name="Accepted">Whether the store accepted it.</param>
public sealed record FencedStoreEntry(long AtNs, string Resource, int Holder, long Token, string Value, bool Accepted);

/// <summary>
/// A store the harness owns that accepts a write only if its fencing token is at least the highest it
/// accepted for that resource (Kleppmann's fencing). Thread-safe; keeps every attempt in arrival order.
/// </summary>
public sealed class FencedStore
{
    private readonly Dictionary<string, long> _highest = new(StringComparer.Ordinal);
    private readonly List<FencedStoreEntry> _log = [];

    /// <summary>Writes <paramref name="value"/> if <paramref name="token"/> is not older than the newest accepted; returns whether it did.</summary>
    public bool Write(long atNs, string resource, int holder, long token, string value)
    {
        lock (_log)
        {
            var accepted = !_highest.TryGetValue(resource, out var highest) || token >= highest;
            if (accepted)
            {
                _highest[resource] = token;
            }

            _log.Add(new FencedStoreEntry(atNs, resource, holder, token, value, accepted));
            return accepted;
        }
    }

    /// <summary>Every attempt so far, in arrival order.</summary>
    public IReadOnlyList<FencedStoreEntry> Log()
    {
        lock (_log)
        {
            return [.. _log];
        }
    }
}

/// <summary>
/// Lock safety: no two holds of one lock share a token; holds never overlap while their leases
/// certainly held; a hold that began after another ended has a larger token; and the store never
/// accepted a token lower than one it had accepted before.
/// </summary>
public static class LockChecker
{
    /// <summary>Every violation found.</summary>
    public static IReadOnlyList<Violation> Check(IReadOnlyList<LockHold> holds, IReadOnlyList<FencedStoreEntry> store)
    {
        var violations = new List<Violation>();
        foreach (var byLock in holds.GroupBy(h => h.Lock, StringComparer.Ordinal))
        {
            var list = byLock.OrderBy(h => h.AcquiredNs).ToList();
            foreach (var twice in list.GroupBy(h => h.Token).Where(g => g.Count() > 1))
            {
                violations.Add(new Violation("double-grant", byLock.Key, $"{byLock.Key}: token {twice.Key} granted to {twice.Count()} holds (holders {string.Join(", ", twice.Select(h => h.Holder))})", []));
            }

            for (var i = 0; i < list.Count; i++)
            {
                for (var j = i + 1; j < list.Count && list[j].AcquiredNs < list[i].SafeEndNs; j++)
                {
                    var (a, b) = (list[i], list[j]);
                    if (b.AcquiredNs < a.SafeEndNs && a.AcquiredNs < b.SafeEndNs)
                    {
                        violations.Add(new Violation("overlapping-holders", byLock.Key, $"{byLock.Key}: holder {a.Holder} (token {a.Token}, {Ms(a.AcquiredNs)}–{Ms(a.SafeEndNs)}) and holder {b.Holder} (token {b.Token}, {Ms(b.AcquiredNs)}–{Ms(b.SafeEndNs)}) held it at once with live leases", []));
                    }
                }

                foreach (var later in list.Where(h => h.AcquiredNs > list[i].ReleasedNs && h.Token <= list[i].Token))
                {
                    violations.Add(new Violation("token-order", byLock.Key, $"{byLock.Key}: holder {later.Holder} acquired at {Ms(later.AcquiredNs)}, after holder {list[i].Holder} released at {Ms(list[i].ReleasedNs)}, with token {later.Token} ≤ {list[i].Token}", []));
                }
            }
        }

        foreach (var byResource in store.GroupBy(e => e.Resource, StringComparer.Ordinal))
        {
            long highest = 0;
            foreach (var entry in byResource.Where(e => e.Accepted))
            {
                if (entry.Token < highest)
                {
                    violations.Add(new Violation("fencing-token-backwards", byResource.Key, $"{byResource.Key}: the store accepted token {entry.Token} from holder {entry.Holder} at {Ms(entry.AtNs)} after accepting token {highest}", []));
                }

                highest = Math.Max(highest, entry.Token);
            }
        }

        return violations;
    }

    private static string Ms(long ns) => ns == long.MaxValue ? "∞" : $"{ns / 1e6:F1} ms";
}
