using System.Diagnostics;

namespace Arbiter.Verification.History;

/// <summary>
/// Records operations from many concurrent clients with one monotonic clock. Thread-safe. Each
/// <see cref="Invoke"/> is completed once with <see cref="Complete"/>; anything never completed counts
/// as <see cref="OperationStatus.Info"/>.
/// </summary>
public sealed class HistoryRecorder
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<Operation> _operations = [];
    private readonly List<HistoryNote> _notes = [];
    private int _nextProcess;

    /// <summary>Nanoseconds since the recorder started (monotonic).</summary>
    public long NowNs => (long)(_clock.ElapsedTicks * (1e9 / Stopwatch.Frequency));

    /// <summary>A fresh logical process id (a client starts with one, and takes a new one after an indeterminate operation).</summary>
    public int NewProcess() => Interlocked.Increment(ref _nextProcess) - 1;

    /// <summary>Records an invocation now and returns its id.</summary>
    public int Invoke(int process, OperationKind kind, string key, string? value = null, string? expected = null, long revision = 0)
    {
        lock (_operations)
        {
            var id = _operations.Count;
            _operations.Add(new Operation { Id = id, Process = process, Kind = kind, Key = key, Value = value, Expected = expected, Revision = revision, InvokeNs = NowNs });
            return id;
        }
    }

    /// <summary>Records the completion of <paramref name="id"/> now. <see cref="OperationStatus.Info"/> keeps the completion time at infinity.</summary>
    public void Complete(int id, OperationStatus status, string? value = null, bool? succeeded = null, long? revision = null, string? note = null)
    {
        if (status == OperationStatus.Pending)
        {
            throw new ArgumentOutOfRangeException(nameof(status), "an operation completes ok, fail or info");
        }

        var now = NowNs;
        lock (_operations)
        {
            var op = _operations[id];
            if (op.Status != OperationStatus.Pending)
            {
                throw new InvalidOperationException($"operation {id} completed twice");
            }

            _operations[id] = op with
            {
                Status = status,
                CompleteNs = status == OperationStatus.Info ? long.MaxValue : now,
                Value = op.Kind == OperationKind.Read ? value : value ?? op.Value,
                Succeeded = succeeded ?? op.Succeeded,
                Revision = revision ?? op.Revision,
                Note = note,
            };
        }
    }

    /// <summary>A timestamped event that is not an operation (a nemesis starting or healing), for the timeline.</summary>
    public void Note(string source, string text)
    {
        var now = NowNs;
        lock (_notes)
        {
            _notes.Add(new HistoryNote(now, source, text));
        }
    }

    /// <summary>Every operation so far, pending ones turned <see cref="OperationStatus.Info"/>.</summary>
    public IReadOnlyList<Operation> Snapshot()
    {
        lock (_operations)
        {
            return [.. _operations.Select(o => o.Status == OperationStatus.Pending ? o with { Status = OperationStatus.Info, Note = o.Note ?? "never completed" } : o)];
        }
    }

    /// <summary>The notes so far, in time order.</summary>
    public IReadOnlyList<HistoryNote> Notes()
    {
        lock (_notes)
        {
            return [.. _notes];
        }
    }
}

/// <summary>Something that happened at <paramref name="AtNs"/> besides an operation: a nemesis action, a member restart.</summary>
/// <param name="AtNs">ns since the history's start.</param>
/// <param name="Source">Who: <c>nemesis</c>, <c>cluster</c>.</param>
/// <param name="Text">What.</param>
public sealed record HistoryNote(long AtNs, string Source, string Text);
