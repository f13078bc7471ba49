using System.Collections.Concurrent;
using Arbiter.Verification.History;

namespace Arbiter.Verification.Checkers;

/// <summary>The outcome of a check.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<Verdict>))]
public enum Verdict
{
    /// <summary>No violation: a legal explanation exists for every part.</summary>
    Ok,

    /// <summary>At least one violation.</summary>
    Violation,

    /// <summary>The check ran out of its budget before deciding.</summary>
    Unknown,
}

/// <summary>One violation: its kind, the smallest window of operations that cannot be explained, and why.</summary>
/// <param name="Kind">stale-read, lost-write, double-cas, unwritten-value, nonlinearizable, or a watch/lock kind.</param>
/// <param name="Key">The key (or watch, or lock) it concerns.</param>
/// <param name="Explanation">A sentence for humans.</param>
/// <param name="Window">The operations that together cannot be explained (ids into the history).</param>
public sealed record Violation(string Kind, string Key, string Explanation, IReadOnlyList<int> Window);

/// <summary>The linearizability verdict of one key's sub-history.</summary>
/// <param name="Key">The key.</param>
/// <param name="Verdict">Its verdict.</param>
/// <param name="Operations">Operations checked (failed ones and failed reads are left out).</param>
/// <param name="LongestLinearizedPrefix">For a violation: how many operations the deepest partial linearization held.</param>
/// <param name="SearchSteps">Steps the search took.</param>
public sealed record KeyVerdict(string Key, Verdict Verdict, int Operations, int LongestLinearizedPrefix, long SearchSteps);

/// <summary>The result of <see cref="LinearizabilityChecker.Check"/>.</summary>
/// <param name="Verdict">Violation if any key has one; else Unknown if any key ran out of budget; else Ok.</param>
/// <param name="Keys">Per-key verdicts.</param>
/// <param name="Violations">One per violating key, with its smallest unexplained window.</param>
public sealed record LinearizabilityResult(Verdict Verdict, IReadOnlyList<KeyVerdict> Keys, IReadOnlyList<Violation> Violations);

/// <summary>
/// Linearizability of read/write/CAS registers: the Wing–Gong search with Lowe's memoization of
/// (linearized set, state) as Porcupine does it, run per key (linearizability is local, so a history
/// is linearizable iff each key's sub-history is). Failed operations never happened and are dropped;
/// reads that did not complete are dropped; an indeterminate write or CAS gets an infinite completion
/// time, so it may take effect at any point after its invocation, or never (linearized last).
/// </summary>
public static class LinearizabilityChecker
{
    /// <summary>Search steps per key before the verdict is <see cref="Verdict.Unknown"/>.</summary>
    public const long SearchStepsMaxDefault = 50_000_000;

    /// <summary>Checks every key of <paramref name="history"/> (register operations only: read, write, cas).</summary>
    public static LinearizabilityResult Check(IReadOnlyList<Operation> history, long searchStepsMax = SearchStepsMaxDefault)
    {
        var byKey = history
            .Where(o => o.Kind is OperationKind.Read or OperationKind.Write or OperationKind.Cas)
            .GroupBy(o => o.Key, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToList();
        var verdicts = new ConcurrentDictionary<string, (KeyVerdict Verdict, Violation? Violation)>(StringComparer.Ordinal);
        Parallel.ForEach(byKey, group => verdicts[group.Key] = CheckKey(group.Key, [.. group], searchStepsMax));
        var keys = byKey.Select(g => verdicts[g.Key].Verdict).ToList();
        var violations = byKey.Select(g => verdicts[g.Key].Violation).OfType<Violation>().ToList();
        var verdict = violations.Count > 0 ? Verdict.Violation : keys.Any(k => k.Verdict == Verdict.Unknown) ? Verdict.Unknown : Verdict.Ok;
        return new LinearizabilityResult(verdict, keys, violations);
    }

    private static (KeyVerdict, Violation?) CheckKey(string key, List<Operation> all, long searchStepsMax)
    {
        var ops = all.Where(o => o.Status is OperationStatus.Ok || (o.Status is OperationStatus.Info or OperationStatus.Pending && o.Kind != OperationKind.Read)).ToList();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int Id(string? value) => value is null ? 0 : ids.TryGetValue(value, out var id) ? id : ids[value] = ids.Count + 1;
        var model = ops.Select((o, i) => new ModelOp(i, o.Kind, Id(o.Value), Id(o.Expected), o.Succeeded, o.Status != OperationStatus.Ok, o.InvokeNs, o.Status == OperationStatus.Ok ? o.CompleteNs : long.MaxValue)).ToList();

        // First without the indeterminate writes nobody observed ("never" is one of their legal
        // outcomes, so legal without them means legal); only if that fails, with all of them.
        var observed = model.Where(m => !m.IsInfo && (m.Kind == OperationKind.Read || (m.Kind == OperationKind.Cas && m.Succeeded == true))).Select(m => m.Kind == OperationKind.Read ? m.Value : m.Expected).ToHashSet();
        var pruned = model.Where(m => !m.IsInfo || observed.Contains(m.Value)).ToList();
        var search = Search(pruned, 0, searchStepsMax);
        // Exact without a second pass unless some CAS failed: only a failed CAS can be explained by
        // an unobserved value in the register.
        if (search.Verdict != Verdict.Ok && pruned.Count != model.Count && model.Any(m => m.Kind == OperationKind.Cas && m.Succeeded == false && !m.IsInfo))
        {
            search = Search(model, 0, searchStepsMax);
        }

        var verdict = new KeyVerdict(key, search.Verdict, ops.Count, search.LongestPrefix, search.Steps);
        if (search.Verdict != Verdict.Violation)
        {
            return (verdict, null);
        }

        var stuck = model[search.StuckIndex];
        var window = SmallestWindow(model, stuck);
        var windowOps = window.Select(i => ops[i]).OrderBy(o => o.InvokeNs).ToList();
        var kind = Classify(ops, ops[stuck.Index]);
        var explanation = $"{key}: no linearization explains {ops[stuck.Index]}; the longest legal prefix held {search.LongestPrefix} of {ops.Count} operations. Smallest unexplained window ({windowOps.Count}): {string.Join("; ", windowOps)}";
        return (verdict, new Violation(kind, key, explanation, [.. windowOps.Select(o => o.Id)]));
    }

    /// <summary>
    /// The fewest operations, ending at the one the search got stuck on, that no register state
    /// before them could explain (or, if only the start of history explains the contradiction, all of them).
    /// </summary>
    private static List<int> SmallestWindow(List<ModelOp> model, ModelOp stuck)
    {
        var relevant = model.Where(m => m.InvokeNs <= stuck.CompleteNs).ToList();
        var finishes = relevant.Where(m => m.CompleteNs != long.MaxValue && m.CompleteNs <= stuck.CompleteNs).Select(m => m.CompleteNs).OrderDescending().ToList();
        for (var k = 1; k <= finishes.Count; k = k < 64 ? k + 1 : k * 2)
        {
            var from = finishes[Math.Min(k, finishes.Count) - 1];
            var window = relevant.Where(m => m.CompleteNs >= from).ToList();
            if (Search(window, RegisterModel.Unknown, 1_000_000).Verdict == Verdict.Violation)
            {
                return [.. window.Select(m => m.Index)];
            }
        }

        return [.. relevant.Select(m => m.Index)];
    }

    private static string Classify(List<Operation> ops, Operation stuck)
    {
        if (stuck.Kind == OperationKind.Read && stuck.Value is { } read)
        {
            var writer = ops.FirstOrDefault(o => o.Value == read && o.Kind is OperationKind.Write or OperationKind.Cas && o.Id != stuck.Id);
            if (writer is null)
            {
                return "unwritten-value";
            }

            // A write acknowledged before the read began, itself begun after the read value's write ended.
            var newer = ops.Where(o => o.Status == OperationStatus.Ok && o.Kind is OperationKind.Write or OperationKind.Cas && o.Succeeded != false
                && o.CompleteNs < stuck.InvokeNs && o.InvokeNs > writer.CompleteNs).ToList();
            if (newer.Count > 0)
            {
                // Lost: after the newer write, no read ever sees it or anything written after it began.
                var writers = ops.Where(o => o.Kind is OperationKind.Write or OperationKind.Cas && o.Value is not null).GroupBy(o => o.Value!).ToDictionary(g => g.Key, g => g.First());
                var lost = newer.Any(w => ops.Where(r => r.Kind == OperationKind.Read && r.Status == OperationStatus.Ok && r.InvokeNs > w.CompleteNs)
                    .All(r => r.Value is null || !writers.TryGetValue(r.Value, out var source) || source.InvokeNs < w.InvokeNs));
                return lost ? "lost-write" : "stale-read";
            }
        }

        if (stuck.Kind == OperationKind.Cas && stuck.Succeeded == true
            && ops.Any(o => o.Id != stuck.Id && o.Kind == OperationKind.Cas && o.Status == OperationStatus.Ok && o.Succeeded == true && o.Expected == stuck.Expected))
        {
            return "double-cas";
        }

        return "nonlinearizable";
    }

    private readonly record struct SearchResult(Verdict Verdict, int LongestPrefix, int StuckIndex, long Steps);

    private sealed class Node
    {
        public ModelOp Op;
        public bool IsCall;
        public Node? Match;
        public Node? Prev;
        public Node? Next;
    }

    /// <summary>Porcupine's checkSingle: depth-first search over a doubly linked list of call and return entries.</summary>
    private static SearchResult Search(List<ModelOp> ops, int initialState, long stepsMax)
    {
        var entries = new List<Node>(ops.Count * 2);
        for (var i = 0; i < ops.Count; i++)
        {
            var call = new Node { Op = ops[i] with { Index = i }, IsCall = true };
            var ret = new Node { Op = call.Op, IsCall = false };
            call.Match = ret;
            entries.Add(call);
            entries.Add(ret);
        }

        // By time; at equal times calls first (they count as concurrent, the lenient reading).
        entries.Sort((a, b) =>
        {
            var ta = a.IsCall ? a.Op.InvokeNs : a.Op.CompleteNs;
            var tb = b.IsCall ? b.Op.InvokeNs : b.Op.CompleteNs;
            var byTime = ta.CompareTo(tb);
            return byTime != 0 ? byTime : (a.IsCall ? 0 : 1).CompareTo(b.IsCall ? 0 : 1);
        });
        var head = new Node();
        var previous = head;
        foreach (var entry in entries)
        {
            previous.Next = entry;
            entry.Prev = previous;
            previous = entry;
        }

        var words = (ops.Count + 63) / 64;
        var linearized = new ulong[words];
        var cache = new Dictionary<long, List<(ulong[] Set, int State)>>();
        var stack = new Stack<(Node Call, int State)>();
        var state = initialState;
        var current = head.Next;
        var longest = 0;
        var stuck = -1;
        long steps = 0;
        while (head.Next is not null)
        {
            if (++steps > stepsMax)
            {
                return new SearchResult(Verdict.Unknown, longest, stuck, steps);
            }

            var node = current!;
            if (node.IsCall)
            {
                if (RegisterModel.Step(state, node.Op, out var next))
                {
                    var index = node.Op.Index;
                    linearized[index >> 6] |= 1UL << (index & 63);
                    if (CacheAdd(cache, linearized, next))
                    {
                        stack.Push((node, state));
                        state = next;
                        Lift(node);
                        current = head.Next;
                        if (stack.Count > longest)
                        {
                            longest = stack.Count;
                            stuck = -1;
                        }

                        continue;
                    }

                    linearized[index >> 6] &= ~(1UL << (index & 63));
                }

                current = node.Next;
            }
            else
            {
                if (stuck < 0 && stack.Count == longest)
                {
                    stuck = node.Op.Index;
                }

                if (stack.Count == 0)
                {
                    return new SearchResult(Verdict.Violation, longest, stuck < 0 ? node.Op.Index : stuck, steps);
                }

                var (call, before) = stack.Pop();
                state = before;
                var index = call.Op.Index;
                linearized[index >> 6] &= ~(1UL << (index & 63));
                Unlift(call);
                current = call.Next;
            }
        }

        return new SearchResult(Verdict.Ok, longest, -1, steps);
    }

    private static bool CacheAdd(Dictionary<long, List<(ulong[] Set, int State)>> cache, ulong[] set, int state)
    {
        var mixed = unchecked((ulong)state * 0x9E3779B97F4A7C15UL);
        foreach (var word in set)
        {
            mixed = unchecked((mixed ^ word) * 0x100000001B3UL);
        }

        var hash = unchecked((long)mixed);

        if (!cache.TryGetValue(hash, out var bucket))
        {
            cache[hash] = [((ulong[])set.Clone(), state)];
            return true;
        }

        foreach (var (seen, seenState) in bucket)
        {
            if (seenState == state && seen.AsSpan().SequenceEqual(set))
            {
                return false;
            }
        }

        bucket.Add(((ulong[])set.Clone(), state));
        return true;
    }

    private static void Lift(Node call)
    {
        call.Prev!.Next = call.Next;
        call.Next!.Prev = call.Prev;
        var ret = call.Match!;
        ret.Prev!.Next = ret.Next;
        if (ret.Next is not null)
        {
            ret.Next.Prev = ret.Prev;
        }
    }

    private static void Unlift(Node call)
    {
        var ret = call.Match!;
        ret.Prev!.Next = ret;
        if (ret.Next is not null)
        {
            ret.Next.Prev = ret;
        }

        call.Prev!.Next = call;
        call.Next!.Prev = call;
    }
}
