using Arbiter.Verification.History;

namespace Arbiter.Verification.Checkers;

/// <summary>One event a watcher received.</summary>
/// <param name="Revision">The event's mod revision (for a delete, the deleting revision).</param>
/// <param name="Key">The key.</param>
/// <param name="Value">The value put (null for a delete).</param>
public sealed record WatchEventRecord(long Revision, string Key, string? Value);

/// <summary>One response on a watch stream.</summary>
/// <param name="ReceivedNs">When it arrived, ns since the history's start.</param>
/// <param name="HeaderRevision">Its header revision.</param>
/// <param name="IsProgressNotify">An empty response that says: every event up to <paramref name="HeaderRevision"/> was delivered.</param>
/// <param name="Events">Its events, in order.</param>
public sealed record WatchResponseRecord(long ReceivedNs, long HeaderRevision, bool IsProgressNotify, IReadOnlyList<WatchEventRecord> Events);

/// <summary>One watch from its creation to its end (a resumed watch is a new stream starting after the last revision seen).</summary>
/// <param name="Id">Its number in the history.</param>
/// <param name="Prefix">The key prefix watched.</param>
/// <param name="StartRevision">The revision it was created at (0: from now).</param>
/// <param name="CreatedRevision">The header revision of its creation response (the first revision it may leave out when started from now).</param>
/// <param name="Responses">What it received.</param>
public sealed record WatchStreamRecord(int Id, string Prefix, long StartRevision, long CreatedRevision, IReadOnlyList<WatchResponseRecord> Responses);

/// <summary>
/// The watch guarantees etcd's robustness tests check (https://etcd.io/docs/v3.6/learning/api_guarantees/#watch-apis),
/// against each other and against the recorded KV history: ordered, unique, atomic, bookmarkable,
/// reliable (no gaps, against every write acknowledged with its revision and every event another
/// watcher saw), resumable (a watch started at r delivers nothing before r and the first change at
/// or after r first), plus agreement: every event is a write that was invoked, at the revision it was
/// acknowledged with, and all watchers agree on each revision.
/// </summary>
public static class WatchChecker
{
    /// <summary>Every violation found (empty: all guarantees held).</summary>
    public static IReadOnlyList<Violation> Check(IReadOnlyList<WatchStreamRecord> streams, IReadOnlyList<Operation> history)
    {
        var violations = new List<Violation>();
        void Add(string kind, WatchStreamRecord stream, string text) =>
            violations.Add(new Violation(kind, $"watch {stream.Id} {stream.Prefix}", $"watch {stream.Id} on {stream.Prefix} from {stream.StartRevision}: {text}", []));

        // What the KV history says: acknowledged writes with their revisions, and every value ever written.
        var acked = history.Where(o => o.Status == OperationStatus.Ok && o.Revision > 0 && o.Kind is OperationKind.Write or OperationKind.Cas && o.Succeeded != false).ToList();
        var written = history.Where(o => o.Kind is OperationKind.Write or OperationKind.Cas && o.Value is not null).Select(o => (o.Key, o.Value!)).ToHashSet();
        var byRevisionKey = new Dictionary<(long, string), string?>();
        foreach (var op in acked)
        {
            byRevisionKey[(op.Revision, op.Key)] = op.Value;
        }

        // What all watchers saw, merged; a disagreement between watchers is a violation of its own.
        var merged = new Dictionary<(long, string), string?>();
        foreach (var stream in streams)
        {
            foreach (var e in stream.Responses.SelectMany(r => r.Events))
            {
                if (merged.TryGetValue((e.Revision, e.Key), out var other) && other != e.Value)
                {
                    Add("cross-client", stream, $"event {e.Key}@{e.Revision}={e.Value ?? "(delete)"} but another watcher saw {other ?? "(delete)"}");
                }

                merged[(e.Revision, e.Key)] = e.Value;
            }
        }

        foreach (var stream in streams)
        {
            long lastRevision = 0;
            long progress = 0;
            var seen = new HashSet<(long, string)>();
            var revisionResponse = new Dictionary<long, int>();
            for (var r = 0; r < stream.Responses.Count; r++)
            {
                var response = stream.Responses[r];
                if (response.IsProgressNotify && response.Events.Count == 0)
                {
                    progress = Math.Max(progress, response.HeaderRevision);
                    continue;
                }

                foreach (var e in response.Events)
                {
                    if (e.Revision < lastRevision)
                    {
                        Add("ordered", stream, $"event {e.Key}@{e.Revision} after an event at {lastRevision}");
                    }

                    if (!seen.Add((e.Revision, e.Key)))
                    {
                        Add("unique", stream, $"event {e.Key}@{e.Revision} delivered twice");
                    }

                    if (revisionResponse.TryGetValue(e.Revision, out var earlier) && earlier != r)
                    {
                        Add("atomic", stream, $"the events of revision {e.Revision} arrived split over responses {earlier} and {r}");
                    }

                    revisionResponse[e.Revision] = r;
                    if (e.Revision <= progress)
                    {
                        Add("bookmarkable", stream, $"event {e.Key}@{e.Revision} after a progress notification at {progress}");
                    }

                    if (stream.StartRevision > 0 && e.Revision < stream.StartRevision)
                    {
                        Add("resumable", stream, $"event {e.Key}@{e.Revision} before the start revision {stream.StartRevision}");
                    }

                    if (e.Value is not null && !written.Contains((e.Key, e.Value)))
                    {
                        Add("unwritten-event", stream, $"event {e.Key}@{e.Revision}={e.Value}: no operation wrote that value");
                    }

                    if (byRevisionKey.TryGetValue((e.Revision, e.Key), out var ackedValue) && ackedValue != e.Value)
                    {
                        Add("event-disagrees-with-kv", stream, $"event {e.Key}@{e.Revision}={e.Value ?? "(delete)"} but the write acknowledged at that revision was {ackedValue}");
                    }

                    lastRevision = Math.Max(lastRevision, e.Revision);
                }
            }

            // Reliable (and the start of resumable): nothing in (from, upTo] under the prefix is missing.
            var from = stream.StartRevision > 0 ? stream.StartRevision : stream.CreatedRevision + 1;
            var upTo = Math.Max(lastRevision, progress);
            var expected = acked.Select(o => (o.Revision, o.Key)).Concat(merged.Keys)
                .Where(x => x.Item1 >= from && x.Item1 <= upTo && x.Item2.StartsWith(stream.Prefix, StringComparison.Ordinal))
                .Distinct()
                .Where(x => !seen.Contains(x))
                .OrderBy(x => x.Item1)
                .ToList();
            if (expected.Count > 0)
            {
                var kind = stream.StartRevision > 0 && expected[0].Item1 < (seen.Count == 0 ? long.MaxValue : seen.Min(s => s.Item1)) ? "resumable" : "reliable";
                Add(kind, stream, $"{expected.Count} change(s) between {from} and {upTo} never delivered, first {expected[0].Item2}@{expected[0].Item1}");
            }
        }

        return violations;
    }
}
