using System.Diagnostics;

namespace Arbiter.Server.Auth;

/// <summary>
/// This member's TTLs of simple tokens (etcd's simpleTokenTTLKeeper): a token lives while used at
/// least once every TTL on this member. The tokens themselves are replicated state (assigned
/// through the log); only their idle clocks are per member, as in etcd. A token this member has
/// not seen yet (assigned through another member) starts its TTL at its first use here.
/// </summary>
public sealed class SimpleTokenKeeper(TimeSpan ttl)
{
    /// <summary>Most entries kept; past it, entries of expired tokens are dropped, then the oldest.</summary>
    public const int EntriesMax = 200_000;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, long> _deadlines = new(StringComparer.Ordinal);

    /// <summary>Marks a token that expired here (never revived by a later use).</summary>
    private const long Expired = long.MinValue;

    /// <summary>The idle TTL.</summary>
    public TimeSpan Ttl { get; } = ttl;

    private static long NowMs => Stopwatch.GetTimestamp() * 1000 / Stopwatch.Frequency;

    /// <summary>Starts a token's TTL (it was just issued by this member).</summary>
    public void Add(string token)
    {
        lock (_gate)
        {
            Trim();
            _deadlines[token] = NowMs + (long)Ttl.TotalMilliseconds;
        }
    }

    /// <summary>Renews the token if it has not expired here; false when it has.</summary>
    public bool TryUse(string token)
    {
        var now = NowMs;
        lock (_gate)
        {
            if (_deadlines.TryGetValue(token, out var deadline) && (deadline == Expired || deadline < now))
            {
                _deadlines[token] = Expired;
                return false;
            }

            if (!_deadlines.ContainsKey(token))
            {
                Trim();
            }

            _deadlines[token] = now + (long)Ttl.TotalMilliseconds;
            return true;
        }
    }

    /// <summary>Forgets every token (auth disabled).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _deadlines.Clear();
        }
    }

    private void Trim()
    {
        if (_deadlines.Count < EntriesMax)
        {
            return;
        }

        var now = NowMs;
        foreach (var (token, deadline) in _deadlines.Where(d => d.Value < now).ToArray())
        {
            _deadlines.Remove(token);
        }

        if (_deadlines.Count >= EntriesMax)
        {
            foreach (var (token, _) in _deadlines.OrderBy(d => d.Value).Take(_deadlines.Count - EntriesMax + 1).ToArray())
            {
                _deadlines.Remove(token);
            }
        }
    }
}
