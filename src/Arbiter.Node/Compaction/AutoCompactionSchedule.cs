namespace Arbiter.Node.Compaction;

/// <summary>
/// When to compact and to which revision — etcd 3.4's compactors as a deterministic state machine
/// (the caller supplies the time and the current revision; see v3compactor/periodic.go and
/// revision.go).
/// </summary>
internal sealed class AutoCompactionSchedule
{
    private const long HourMs = 3_600_000;

    /// <summary>etcd checks a revision retention every five minutes.</summary>
    internal const long RevisionCheckIntervalMs = 5 * 60 * 1000;

    private readonly AutoCompactionOptions _options;
    private readonly Queue<long> _revisions = new();
    private readonly long _compactIntervalMs;
    private readonly int _revisionsKept;
    private long _lastSuccessMs;
    private long _waitMs;
    private long _lastCompacted;

    /// <summary>A schedule starting now.</summary>
    /// <param name="options">Mode and retention.</param>
    /// <param name="startMs">The monotonic time now.</param>
    /// <param name="startRevision">The store's revision now: the first periodic sample.</param>
    public AutoCompactionSchedule(AutoCompactionOptions options, long startMs, long startRevision)
    {
        _options = options;
        _lastSuccessMs = startMs;
        _revisions.Enqueue(startRevision);
        if (options.Mode == AutoCompactionMode.Periodic)
        {
            // Compact every period (at most hourly); sample the revision every tenth of that, and
            // keep samples spanning one retention period: the oldest is the revision a period ago.
            _compactIntervalMs = Math.Min(options.Retention, HourMs);
            CheckIntervalMs = Math.Max(1, _compactIntervalMs / 10);
            _revisionsKept = (int)Math.Min(int.MaxValue - 1, options.Retention / CheckIntervalMs) + 1;
            _waitMs = options.Retention;
        }
        else
        {
            CheckIntervalMs = RevisionCheckIntervalMs;
        }
    }

    /// <summary>How often <see cref="Next"/> should be called.</summary>
    public long CheckIntervalMs { get; }

    /// <summary>Records the current revision; returns the revision to compact to now, or null.</summary>
    /// <param name="nowMs">The monotonic time.</param>
    /// <param name="revision">The store's current revision.</param>
    public long? Next(long nowMs, long revision)
    {
        if (_options.Mode == AutoCompactionMode.Revision)
        {
            var target = revision - _options.Retention;
            return target <= 0 || target == _lastCompacted ? null : target;
        }

        _revisions.Enqueue(revision);
        if (_revisions.Count > _revisionsKept)
        {
            _revisions.Dequeue();
        }

        if (nowMs - _lastSuccessMs < _waitMs)
        {
            return null;
        }

        // The first compaction waits a whole retention period, later ones the compaction interval.
        _waitMs = _compactIntervalMs;
        var oldest = _revisions.Peek();
        return oldest > 0 ? oldest : null;
    }

    /// <summary>The compaction to <paramref name="revision"/> was applied (or was already done).</summary>
    public void Succeeded(long nowMs, long revision)
    {
        _lastSuccessMs = nowMs;
        _lastCompacted = revision;
    }
}
