using Kind = Arbiter.Protocol.Transactions.TransactionError.Types.Kind;

namespace Arbiter.Core.Tests.Transactions;

/// <summary>
/// The lock table's rules written the plain way, for <see cref="LockTableModelTests"/>: keys are
/// integer positions (key i is the span [2i, 2i+1), the range [k_a, k_b) is [2a, 2b)), every
/// decision is recomputed from the whole request list. Deadlock search uses the same documented
/// order (depth-first, lowest transaction id first) so that the victim is determined.
/// </summary>
internal sealed class LockModel
{
    private readonly SortedDictionary<long, Txn> _txns = [];
    private readonly Dictionary<long, Kind> _finished = [];
    private readonly HashSet<long> _timedOut = [];
    private long _lastTxn;
    private long _lastSeq;

    public enum Outcome
    {
        Granted,
        Waiting,
        Deadlock,
        Busy,
        Error,
    }

    /// <summary>Live leases: id → deadline (ms).</summary>
    public SortedDictionary<long, long> Leases { get; } = [];

    public List<Req> Requests { get; } = [];

    public List<long> OpenTxns() => [.. _txns.Keys];

    public long? Begin(long lease, long limitMs, long nowMs)
    {
        Timers(nowMs);
        if (!Leases.TryGetValue(lease, out var deadline) || deadline <= nowMs)
        {
            return null;
        }

        var id = ++_lastTxn;
        _txns[id] = new Txn(id, lease, nowMs + limitMs);
        return id;
    }

    /// <summary>A single-target lock (see the multi-target overload).</summary>
    public (Outcome Outcome, long Seq, Kind Kind) Lock(long txn, int lo, int hi, bool exclusive, bool nowait, long timeoutMs, long nowMs)
    {
        var (outcome, seq, kind, _) = Lock(txn, [(lo, hi, exclusive)], nowait, timeoutMs, nowMs);
        return (outcome, seq, kind);
    }

    /// <summary>
    /// A lock request with several targets, taken one after the other as separate single locks
    /// would be: held ones count as granted, the first that must wait queues (and the caller stops
    /// there), NOWAIT undoes what this request granted when a target is busy. Granted = how many
    /// targets were granted (or held) before the walk stopped.
    /// </summary>
    public (Outcome Outcome, long Seq, Kind Kind, int Granted) Lock(long txn, IReadOnlyList<(int Lo, int Hi, bool Exclusive)> targets, bool nowait, long timeoutMs, long nowMs)
    {
        Timers(nowMs);
        return LockCore(txn, targets, nowait, timeoutMs, nowMs);
    }

    /// <summary>Begin carrying locks: opens the transaction and locks in one step; a busy NOWAIT target opens nothing.</summary>
    public (long? Txn, Outcome Outcome, long Seq, Kind Kind, int Granted) BeginLocked(long lease, long limitMs, long nowMs, IReadOnlyList<(int Lo, int Hi, bool Exclusive)> targets, bool nowait, long timeoutMs)
    {
        if (Begin(lease, limitMs, nowMs) is not { } id)
        {
            return (null, Outcome.Error, 0, Kind.Unspecified, 0);
        }

        var result = LockCore(id, targets, nowait, timeoutMs, nowMs);
        if (result.Outcome == Outcome.Busy)
        {
            _txns.Remove(id);
            _lastTxn--;
            return (null, Outcome.Busy, 0, Kind.LockBusy, 0);
        }

        return (id, result.Outcome, result.Seq, result.Kind, result.Granted);
    }

    private (Outcome Outcome, long Seq, Kind Kind, int Granted) LockCore(long txn, IReadOnlyList<(int Lo, int Hi, bool Exclusive)> targets, bool nowait, long timeoutMs, long nowMs)
    {
        if (!_txns.ContainsKey(txn))
        {
            return (Outcome.Error, 0, _finished.TryGetValue(txn, out var k) ? k : Kind.UnknownTransaction, 0);
        }

        var (requestsBefore, seqBefore) = (Requests.Count, _lastSeq);
        for (var i = 0; i < targets.Count; i++)
        {
            var (lo, hi, exclusive) = targets[i];
            if (Requests.Any(q => q.Txn == txn && q.Granted && q.Lo <= lo && hi <= q.Hi && (q.Exclusive || !exclusive)))
            {
                continue;
            }

            if (Requests.FirstOrDefault(q => q.Txn == txn && !q.Granted) is { } waiting)
            {
                return waiting.Lo == lo && waiting.Hi == hi && waiting.Exclusive == exclusive
                    ? (Outcome.Waiting, waiting.Seq, Kind.Unspecified, i)
                    : (Outcome.Error, 0, Kind.Unspecified, 0);
            }

            var r = new Req(_lastSeq + 1, txn, lo, hi, exclusive) { WaitDeadlineMs = nowMs + timeoutMs };
            if (!Blockers(r, isNew: true).Any())
            {
                _lastSeq++;
                r.Granted = true;
                Requests.Add(r);
                continue;
            }

            if (nowait)
            {
                // All or none: take back what this request granted.
                Requests.RemoveRange(requestsBefore, Requests.Count - requestsBefore);
                _lastSeq = seqBefore;
                return (Outcome.Busy, 0, Kind.LockBusy, 0);
            }

            _lastSeq++;
            Requests.Add(r);
            while (!r.Granted && FindCycle(txn) is { } cycle)
            {
                var victim = cycle.Select(id => _txns[id]).MaxBy(t => t.Id)!;   // age = id: no retries here
                End(victim.Id, Kind.Deadlock);
                if (victim.Id == txn)
                {
                    return (Outcome.Deadlock, 0, Kind.Deadlock, 0);
                }
            }

            return r.Granted && i == targets.Count - 1 ? (Outcome.Granted, r.Seq, Kind.Unspecified, targets.Count) : (Outcome.Waiting, r.Seq, Kind.Unspecified, i);
        }

        return (Outcome.Granted, 0, Kind.Unspecified, targets.Count);
    }

    public bool Commit(long txn, List<int> writeKeys, long nowMs)
    {
        Timers(nowMs);
        if (!_txns.TryGetValue(txn, out var t))
        {
            return false;
        }

        if (!Leases.TryGetValue(t.Lease, out var deadline) || deadline <= nowMs)
        {
            End(txn, Kind.Aborted);
            return false;
        }

        if (Requests.Any(q => q.Txn == txn && !q.Granted))
        {
            return false;
        }

        if (!writeKeys.All(k => Requests.Any(q => q.Txn == txn && q.Exclusive && q.Lo <= 2 * k && 2 * k + 1 <= q.Hi)))
        {
            return false;
        }

        End(txn, Kind.Aborted);   // later calls on a committed transaction answer "no longer open"
        return true;
    }

    public void Abort(long txn, long nowMs)
    {
        Timers(nowMs);
        if (_txns.ContainsKey(txn))
        {
            End(txn, Kind.Aborted);
        }
    }

    public void Timers(long nowMs)
    {
        foreach (var t in _txns.Values.Where(t => t.DeadlineMs <= nowMs).ToList())
        {
            End(t.Id, Kind.Aborted);
        }

        var due = Requests.Where(q => !q.Granted && q.WaitDeadlineMs <= nowMs).ToList();
        foreach (var q in due)
        {
            Requests.Remove(q);
            _timedOut.Add(q.Seq);
        }

        if (due.Count > 0)
        {
            GrantPass();
        }
    }

    public void ExpireLeases(long nowMs)
    {
        foreach (var (lease, _) in Leases.Where(l => l.Value <= nowMs).ToList())
        {
            foreach (var t in _txns.Values.Where(t => t.Lease == lease).ToList())
            {
                End(t.Id, Kind.Aborted);
            }

            Leases.Remove(lease);
        }
    }

    /// <summary>Key positions the transaction may write (under a granted exclusive lock).</summary>
    public List<int> ExclusiveKeys(long txn) =>
        [.. Enumerable.Range(0, 8).Where(k => Requests.Any(q => q.Txn == txn && q.Granted && q.Exclusive && q.Lo <= 2 * k && 2 * k + 1 <= q.Hi))];

    /// <summary>What a queued caller should learn: Unspecified while waiting, (Kind)(-1) once granted, else the failure.</summary>
    public Kind Fate(long txn, long seq)
    {
        if (Requests.FirstOrDefault(q => q.Seq == seq) is { } r)
        {
            return r.Granted ? (Kind)(-1) : Kind.Unspecified;
        }

        if (_txns.ContainsKey(txn))
        {
            return _timedOut.Contains(seq) ? Kind.LockTimeout : Kind.Unspecified;
        }

        return _finished[txn];
    }

    private static bool Conflicts(Req a, Req b) => a.Txn != b.Txn && (a.Exclusive || b.Exclusive) && a.Lo < b.Hi && b.Lo < a.Hi;

    private IEnumerable<Req> Blockers(Req r, bool isNew = false)
    {
        var skipQueue = Requests.Any(q => q.Granted && q.Txn == r.Txn && q.Lo < r.Hi && r.Lo < q.Hi);
        return Requests.Where(q => q != r && Conflicts(q, r) && (q.Granted || (!skipQueue && (isNew || q.Seq < r.Seq))));
    }

    private void GrantPass()
    {
        foreach (var q in Requests)
        {
            if (!q.Granted && !Blockers(q).Any())
            {
                q.Granted = true;
            }
        }
    }

    private void End(long txn, Kind kind)
    {
        Requests.RemoveAll(q => q.Txn == txn);
        _txns.Remove(txn);
        _finished[txn] = kind;
        GrantPass();
    }

    private List<long>? FindCycle(long start)
    {
        var waiting = Requests.Where(q => !q.Granted).ToDictionary(q => q.Txn);
        if (!waiting.ContainsKey(start))
        {
            return null;
        }

        var visited = new HashSet<long> { start };
        var path = new List<long> { start };
        return Visit(start) ? path : null;

        bool Visit(long t)
        {
            foreach (var next in Blockers(waiting[t]).Select(b => b.Txn).Distinct().Order())
            {
                if (next == start)
                {
                    return true;
                }

                if (waiting.ContainsKey(next) && visited.Add(next))
                {
                    path.Add(next);
                    if (Visit(next))
                    {
                        return true;
                    }

                    path.RemoveAt(path.Count - 1);
                }
            }

            return false;
        }
    }

    public sealed record Txn(long Id, long Lease, long DeadlineMs);

    public sealed class Req(long seq, long txn, int lo, int hi, bool exclusive)
    {
        public long Seq { get; } = seq;

        public long Txn { get; } = txn;

        public int Lo { get; } = lo;

        public int Hi { get; } = hi;

        public bool Exclusive { get; } = exclusive;

        public bool Granted { get; set; }

        public long WaitDeadlineMs { get; set; }
    }
}
