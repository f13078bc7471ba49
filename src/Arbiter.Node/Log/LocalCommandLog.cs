using Arbiter.Core;
using Arbiter.Protocol.Internal;
using Arbiter.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Log;

/// <summary>
/// The single-node log, with group commit. A proposer that finds no write in progress, while the
/// last batch held a single command (one client), becomes the writer and, on its own thread,
/// appends the waiting commands to the write-ahead log, fsyncs once, applies them in order and
/// answers. Proposers that arrive during that fsync queue up and form the next batch, which the
/// log's writer thread writes while the first writer returns its own answer; while batches hold
/// more than one command (many clients), every batch goes to the writer thread, so request
/// threads do not block in fsync then. A command is acknowledged only after its fsync. Without a
/// data directory it keeps nothing.
/// </summary>
/// <remarks>
/// A lone client's write thus never changes threads between the request and the answer (the old
/// dedicated writer thread cost two wake-ups per write: the writer's, then a thread-pool worker's
/// for the continuation).
/// </remarks>
internal sealed class LocalCommandLog : ICommandLog
{
    /// <summary>
    /// A snapshot writes the whole state (history included) while writes wait, so its cost grows
    /// with the state. Waiting until the log since the last snapshot is this many times that
    /// snapshot's size keeps the snapshot work per logged byte constant (as Redis's AOF rewrite
    /// at 100 % growth does); a fixed entry count alone made it grow with the state.
    /// </summary>
    private const double SnapshotLogGrowthRatio = 1.0;

    /// <summary>
    /// Most transaction ids, lock request sequences or fencing tokens (each) that a batch answered
    /// before its fsync may hand out; a batch that hands out more is fsynced before it is answered.
    /// A single node moves each of them on by this much when it starts
    /// (<see cref="LeasePromote.TxnIdentifierGap"/>), past anything a power loss took from the log.
    /// </summary>
    public const long UnflushedIdentifiersMax = 1_000_000;

    /// <summary>
    /// How long the fsync of an answered grant waits for the next command to share it, in ms: a
    /// transaction's commit usually follows its grant within that, and its fsync then covers both.
    /// </summary>
    private const int GrantFsyncDelayMs = 1;

    /// <summary>The name of the log's writer thread (tests tell it apart by it).</summary>
    internal const string WriterThreadName = "arbiter-log-writer";

    private static readonly long GrantFsyncDelayTicks = System.Diagnostics.Stopwatch.Frequency * GrantFsyncDelayMs / 1000;

    private readonly Lock _gate = new();
    private readonly Queue<Pending> _queue = new(); // guarded by _gate
    private readonly List<Pending> _batch; // owned by whoever holds the writer role
    private readonly StateHost _host;
    private readonly WriteAheadLog? _wal;
    private readonly NodeOptions _options;
    private readonly ILogger _logger;
    private bool _writing; // guarded by _gate: some thread holds the writer role
    private bool _closed; // guarded by _gate
    private bool _handedOff; // guarded by _gate: the writer role passed to the writer thread
    private int _lastBatchCommands; // guarded by _gate
    private const int WriterSpinCount = 35; // ManualResetEventSlim's default on a multi-core machine
    private readonly ManualResetEventSlim _wake = new(false, spinCount: 0); // needs no Dispose: its WaitHandle is never read, so no kernel handle exists; spins only where RunWriterThread says
    private TaskCompletionSource? _drained; // guarded by _gate: set when closed and the writer role is released
    private long _appliedIndex;
    private const int PayloadBufferSizeBytesMax = 64 * 1024;
    private byte[] _payloadBuffer = new byte[1024]; // owned by the writer
    private long _snapshotIndex;
    private long _snapshotSizeBytes;
    private long _logBytesSinceSnapshot;
    private Task _snapshotWrite = Task.CompletedTask; // owned by the writer: the last snapshot started
    private volatile Exception? _failure;
    // Owned by the writer role; the writer thread reads them under _gate while no one holds it.
    private bool _flushOwed; // commands were answered before their fsync
    private long _flushDueTicks; // when an owed fsync stops waiting for company
    private bool _grantsAnsweredSinceWriterLooked; // the writer thread lingers while transactions keep coming
    private long _writerWakeTicks = long.MaxValue; // guarded by _gate: when the writer thread wakes by itself at the latest
    private (long TxnId, long Sequence, long FencingToken) _durableIdentifiers; // owned by the writer role: the lock table's numbers at the last point everything applied was durable
    private long _answeredBeforeFsync;

    public LocalCommandLog(StateHost host, WriteAheadLog? wal, long appliedIndex, NodeOptions options, ILogger logger)
    {
        _host = host;
        _wal = wal;
        _options = options;
        _logger = logger;
        _appliedIndex = appliedIndex;
        _snapshotIndex = appliedIndex;
        _snapshotSizeBytes = wal?.LatestSnapshot?.SizeBytes ?? 0;
        _batch = new List<Pending>(Math.Min(options.BatchCommandsMax, 1024));

        // Batches under load are written by a thread of their own: a request thread blocked in
        // fsync is one less thread-pool worker for the other clients' requests and answers.
        new Thread(RunWriterThread) { IsBackground = true, Name = WriterThreadName }.Start();
    }

    public long AppliedIndex => Volatile.Read(ref _appliedIndex);

    public long CommittedIndex => AppliedIndex;

    public bool HasLeader => _failure is null;

    public bool IsLeader => true;

    /// <summary>Set by the node: a single node leads itself.</summary>
    public ulong LeaderId { get; set; }

    public ulong Term => 1;

    /// <summary>
    /// The clock an owed fsync's delay is measured on (<see cref="System.Diagnostics.Stopwatch"/>
    /// ticks); tests replace it to say when a delay has passed.
    /// </summary>
    internal Func<long> Timestamp { get; set; } = System.Diagnostics.Stopwatch.GetTimestamp;

    /// <summary>Commands answered before their fsync so far (transaction Begin and Lock batches).</summary>
    public long CommandsAnsweredBeforeFsync => Interlocked.Read(ref _answeredBeforeFsync);

    public ValueTask WaitLinearizableAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public Task<CommandResult> ProposeAsync(Command command, CancellationToken cancellationToken)
    {
        if (_failure is not null)
        {
            throw new EtcdException(EtcdError.Stopped);
        }

        var pending = new Pending(command);
        Submit(pending);

        // The command may still be applied after the caller gives up; that is fine (etcd does the same).
        var task = pending.Completion.Task;
        return task.IsCompleted || !cancellationToken.CanBeCanceled ? task : task.WaitAsync(cancellationToken);
    }

    /// <summary>Captures a snapshot (by the writer, as the log has one writer) and completes once it is on disk, so that older segments can go.</summary>
    public Task SnapshotAsync(CancellationToken cancellationToken)
    {
        var pending = new Pending(null);
        Submit(pending);
        var task = pending.Completion.Task;
        return task.IsCompleted ? task : task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        Task drained;
        lock (_gate)
        {
            _closed = true;
            if (_writing)
            {
                _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                drained = _drained.Task;
            }
            else
            {
                drained = Task.CompletedTask;
            }
        }

        // Everything queued before the close is still written and answered.
        await drained.ConfigureAwait(false);
        _wake.Set();

        // A snapshot being written still needs the log; its failure was logged where it happened.
        await _snapshotWrite.ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
        if (_wal is not null && _failure is null)
        {
            _wal.Flush();
        }
    }

    /// <summary>Queues <paramref name="pending"/>; if no write is in progress, writes it (and whatever else waits) now, on this thread.</summary>
    private void Submit(Pending pending)
    {
        bool handOff;
        lock (_gate)
        {
            if (_closed)
            {
                throw new EtcdException(EtcdError.Stopped);
            }

            _queue.Enqueue(pending);
            if (_writing)
            {
                return;
            }

            _writing = true;
            handOff = _lastBatchCommands > 1;
            _handedOff |= handOff;
        }

        if (handOff)
        {
            _wake.Set();
            return;
        }

        WriteOneBatch();

        // This caller's command was in that batch. Whatever queued meanwhile is written by the
        // writer thread, so that this caller's answer does not wait for another fsync. An fsync
        // still owed for answered grants waits for the next command (whose own fsync covers it), or
        // for the writer thread after GrantFsyncDelayMs.
        if (ReleaseWriterIfIdle(out var writerThreadOverslept))
        {
            if (writerThreadOverslept)
            {
                _wake.Set();
            }
        }
        else
        {
            lock (_gate)
            {
                _handedOff = true;
            }

            _wake.Set();
        }
    }

    private void RunWriterThread()
    {
        while (true)
        {
            bool handedOff;
            var payOwedFlush = false;
            var waitMs = Timeout.Infinite;
            lock (_gate)
            {
                handedOff = _handedOff;
                _handedOff = false;
                _writerWakeTicks = long.MaxValue;
                if (!handedOff && !_writing && !_closed)
                {
                    var now = Timestamp();
                    if (_flushOwed && now >= _flushDueTicks)
                    {
                        // Answered grants still owe their fsync and no writer took it along.
                        _writing = true;
                        payOwedFlush = true;
                    }
                    else if (_flushOwed || _grantsAnsweredSinceWriterLooked)
                    {
                        // Wake when the owed fsync is due; or, while grants keep being answered,
                        // one grant delay from now, so that the next grant's writer need not wake
                        // this thread (on a VM every wake-up is a trip through the hypervisor):
                        // at one client a transfer would otherwise cost this thread two.
                        _writerWakeTicks = _flushOwed ? _flushDueTicks : now + GrantFsyncDelayTicks;
                        waitMs = Math.Max(1, (int)Math.Ceiling(System.Diagnostics.Stopwatch.GetElapsedTime(now, _writerWakeTicks).TotalMilliseconds));
                    }

                    _grantsAnsweredSinceWriterLooked = false;
                }

                if (!handedOff && !payOwedFlush && _closed && !_writing)
                {
                    return;
                }
            }

            if (handedOff)
            {
                WriteUntilIdle();
                continue;
            }

            if (payOwedFlush)
            {
                PayOwedFlush();
                if (!ReleaseWriterIfIdle())
                {
                    WriteUntilIdle();
                }

                continue;
            }

            if (waitMs == Timeout.Infinite)
            {
                // Waiting for the next batch under load: spin a little first, as the event would
                // by default, since a hand-off often follows at once. A timed wait (an owed fsync)
                // does not spin: on a VM every spin is a yield through the hypervisor.
                SpinUntilWokenOrGiveUp();
            }

            _wake.Wait(waitMs);
            _wake.Reset();
        }
    }

    private void SpinUntilWokenOrGiveUp()
    {
        var spinner = default(SpinWait);
        for (var i = 0; i < WriterSpinCount && !_wake.IsSet; i++)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
        }
    }

    private void WriteUntilIdle()
    {
        do
        {
            WriteOneBatch();
        }
        while (!ReleaseWriterIfIdle());
    }

    /// <summary>Gives up the writer role if nothing is queued; otherwise the caller keeps it.</summary>
    private bool ReleaseWriterIfIdle() => ReleaseWriterIfIdle(out _);

    /// <summary>
    /// Gives up the writer role if nothing is queued; otherwise the caller keeps it.
    /// <paramref name="writerThreadOverslept"/>: an fsync is owed and the writer thread would not
    /// wake by itself before it is due, so the caller must wake it.
    /// </summary>
    private bool ReleaseWriterIfIdle(out bool writerThreadOverslept)
    {
        TaskCompletionSource? drained;
        lock (_gate)
        {
            writerThreadOverslept = false;
            if (_queue.Count > 0)
            {
                return false;
            }

            _writing = false;
            writerThreadOverslept = _flushOwed && _writerWakeTicks > _flushDueTicks;
            drained = _drained;
        }

        drained?.TrySetResult();
        return true;
    }

    /// <summary>Takes up to <see cref="NodeOptions.BatchCommandsMax"/> queued commands, makes them durable, applies them and answers. Only the writer calls this.</summary>
    private void WriteOneBatch()
    {
        var batch = _batch;
        batch.Clear();
        lock (_gate)
        {
            while (batch.Count < _options.BatchCommandsMax && _queue.TryDequeue(out var next))
            {
                batch.Add(next);
            }

            _lastBatchCommands = batch.Count;
        }

        if (batch.Count == 0)
        {
            return;
        }

        try
        {
            ProcessBatch(batch);
        }
        finally
        {
            batch.Clear();
        }
    }

    private void ProcessBatch(List<Pending> batch)
    {
        if (_failure is not null)
        {
            FailAll(batch);
            return;
        }

        if (AnswersBeforeFsync(batch, out var countersBefore))
        {
            // An fsync owed for longer than the grant delay is paid before more grants are
            // answered: grants coming back to back would otherwise push it off. Any other batch's
            // own fsync (below) covers it: paying it first would be a second fsync in a row.
            if (_flushOwed && Timestamp() >= _flushDueTicks)
            {
                PayOwedFlush();
                if (_failure is not null)
                {
                    FailAll(batch);
                    return;
                }
            }

            ProcessGrantBatch(batch, countersBefore);
            return;
        }

        try
        {
            WriteDurably(batch);
        }
        catch (Exception e)
        {
            // Nothing of this batch is acknowledged; the node stops taking writes rather than
            // risk acknowledging something that is not on disk.
            _failure = e;
            _logger.LogCritical(e, "Write-ahead log failed; the node refuses further writes");
            FailAll(batch);
            return;
        }

        var snapshotRequested = false;
        foreach (var pending in batch)
        {
            if (pending.Command is null)
            {
                snapshotRequested = true;
                continue;
            }

            if (TryApply(pending, pending.Command) is { } result)
            {
                pending.Completion.TrySetResult(result);
            }
        }

        var snapshot = MaybeSnapshot(snapshotRequested);
        if (snapshotRequested)
        {
            foreach (var pending in batch)
            {
                if (pending.Command is null)
                {
                    CompleteWhenWritten(pending, snapshot);
                }
            }
        }
    }

    /// <summary>Applies one written command; on failure answers it with an error and returns null.</summary>
    private CommandResult? TryApply(Pending pending, Command command)
    {
        if (_failure is not null)
        {
            pending.Completion.TrySetException(new EtcdException(EtcdError.Stopped));
            return null;
        }

        ApplyOutcome outcome;
        try
        {
            outcome = _host.Apply(pending.Index, command);
        }
        catch (Exception e)
        {
            // A broken invariant in the core: stop, never continue with a state we do not trust.
            _failure = e;
            _logger.LogCritical(e, "Applying command at index {Index} failed; the node refuses further writes", pending.Index);
            pending.Completion.TrySetException(new EtcdException(EtcdError.Stopped));
            return null;
        }

        Volatile.Write(ref _appliedIndex, pending.Index);
        return outcome.Result;
    }

    /// <summary>
    /// Whether <paramref name="batch"/> is answered before its fsync: it holds only transaction
    /// Begin and Lock commands (they change nothing but the lock table, and every later command,
    /// a commit included, is fsynced after them), and the lock table was in use before it (a table
    /// used for the first time has nothing for a restart to move its numbers past: see
    /// <see cref="UnflushedIdentifiersMax"/>).
    /// </summary>
    /// <param name="batch">The batch.</param>
    /// <param name="counters">The lock table's numbers before the batch, read when the batch qualifies.</param>
    private bool AnswersBeforeFsync(List<Pending> batch, out TransactionCounters counters)
    {
        counters = default;
        if (_wal is null || !_options.FsyncEnabled || _options.LockGrantsAwaitFsync)
        {
            return false;
        }

        foreach (var pending in batch)
        {
            if (pending.Command?.OpCase is not (Command.OpOneofCase.TxnBegin or Command.OpOneofCase.TxnLock))
            {
                return false;
            }
        }

        counters = _host.TransactionCounters;
        return counters.Identifiers.TxnId > 0;
    }

    /// <summary>
    /// A batch of transaction Begin and Lock commands: written to the operating system (from then
    /// on a killed process loses none of it), applied and answered; its fsync comes with the next
    /// command's (a commit is fsynced before it is answered, and the log is in order) or from the
    /// writer thread after <see cref="GrantFsyncDelayMs"/>. At one client that takes a grant's
    /// fsync off the transaction's path: its commit's fsync covers it. The transaction numbers
    /// handed out while the fsync is owed stay under <see cref="UnflushedIdentifiersMax"/>, or the
    /// batch is fsynced before it is answered.
    /// </summary>
    private void ProcessGrantBatch(List<Pending> batch, TransactionCounters before)
    {
        if (!_flushOwed)
        {
            // Everything applied so far is durable.
            _durableIdentifiers = before.Identifiers;
        }

        try
        {
            foreach (var pending in batch)
            {
                var payload = Serialize(pending.Command!);
                pending.Index = _wal!.Append(payload);
                _logBytesSinceSnapshot += payload.Length;
            }

            _wal!.WriteUnsynced();
        }
        catch (Exception e)
        {
            _failure = e;
            _logger.LogCritical(e, "Write-ahead log failed; the node refuses further writes");
            FailAll(batch);
            return;
        }

        var results = new CommandResult?[batch.Count];
        for (var i = 0; i < batch.Count; i++)
        {
            results[i] = TryApply(batch[i], batch[i].Command!);
        }

        _grantsAnsweredSinceWriterLooked = true;
        if (!_flushOwed)
        {
            _flushOwed = true;
            _flushDueTicks = Timestamp() + GrantFsyncDelayTicks;
        }

        // Fsync first when more numbers than a restart moves past would be at stake, or when the
        // batch aborted a deadlock victim: that abort, lost, would bring the victim's transaction
        // back with its locks after a restart, though its caller was told it had ended.
        var after = _host.TransactionCounters;
        if (after.Identifiers.TxnId - _durableIdentifiers.TxnId >= UnflushedIdentifiersMax
            || after.Identifiers.Sequence - _durableIdentifiers.Sequence >= UnflushedIdentifiersMax
            || after.Identifiers.FencingToken - _durableIdentifiers.FencingToken >= UnflushedIdentifiersMax
            || after.Deadlocks != before.Deadlocks)
        {
            PayOwedFlush();
            if (_failure is not null)
            {
                FailAll(batch);
                return;
            }
        }

        if (_flushOwed)
        {
            Interlocked.Add(ref _answeredBeforeFsync, batch.Count);
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (results[i] is { } result)
            {
                batch[i].Completion.TrySetResult(result);
            }
        }
    }

    /// <summary>Fsyncs what answered grants wrote; a failure stops the node's writes. Only the writer role calls this.</summary>
    private void PayOwedFlush()
    {
        if (!_flushOwed)
        {
            return;
        }

        _flushOwed = false;
        try
        {
            _wal!.Flush();
        }
        catch (Exception e)
        {
            _failure ??= e;
            _logger.LogCritical(e, "Write-ahead log failed; the node refuses further writes");
        }
    }

    private static void CompleteWhenWritten(Pending pending, Task? snapshot)
    {
        if (snapshot is null)
        {
            pending.Completion.TrySetException(new EtcdException(EtcdError.Stopped));
            return;
        }

        snapshot.ContinueWith(
            (written, state) =>
            {
                var completion = ((Pending)state!).Completion;
                if (written.IsCompletedSuccessfully)
                {
                    completion.TrySetResult(new CommandResult());
                }
                else
                {
                    completion.TrySetException(new EtcdException(EtcdError.Stopped));
                }
            },
            pending,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void WriteDurably(List<Pending> batch)
    {
        if (_wal is null)
        {
            var index = _appliedIndex;
            foreach (var pending in batch)
            {
                if (pending.Command is not null)
                {
                    pending.Index = ++index;
                }
            }

            return;
        }

        foreach (var pending in batch)
        {
            if (pending.Command is not null)
            {
                var payload = Serialize(pending.Command);
                pending.Index = _wal.Append(payload);
                _logBytesSinceSnapshot += payload.Length;
            }
        }

        _wal.Flush();
        _flushOwed = false;
    }

    /// <summary>The command's bytes, in a buffer reused by the writer (the log copies them).</summary>
    private ReadOnlySpan<byte> Serialize(Command command)
    {
        var sizeBytes = command.CalculateSize();
        if (sizeBytes > PayloadBufferSizeBytesMax)
        {
            return command.ToByteArray();
        }

        if (_payloadBuffer.Length < sizeBytes)
        {
            _payloadBuffer = new byte[Math.Max(sizeBytes, _payloadBuffer.Length * 2)];
        }

        var payload = _payloadBuffer.AsSpan(0, sizeBytes);
        command.WriteTo(payload);
        return payload;
    }

    /// <summary>
    /// Starts a snapshot when one is requested or due. Only the capture happens here, while writes
    /// wait; the snapshot is serialized and written by a background thread while the writer goes on.
    /// Returns the write to wait for, or null if there is nothing to snapshot.
    /// </summary>
    private Task? MaybeSnapshot(bool requested)
    {
        if (_failure is not null)
        {
            return requested ? Task.FromException(new EtcdException(EtcdError.Stopped)) : null;
        }

        if (_wal is null || _appliedIndex == _snapshotIndex)
        {
            // Nothing new since the last capture; a request waits for that one to be on disk.
            return requested ? _snapshotWrite : null;
        }

        if (requested
            || (_snapshotWrite.IsCompleted
                && _appliedIndex - _snapshotIndex >= _options.SnapshotEveryEntries
                && _logBytesSinceSnapshot >= Volatile.Read(ref _snapshotSizeBytes) * SnapshotLogGrowthRatio))
        {
            return StartSnapshot();
        }

        return null;
    }

    private Task StartSnapshot()
    {
        var startedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        var image = _host.Read(state => state.CaptureSnapshot());
        var captureMs = System.Diagnostics.Stopwatch.GetElapsedTime(startedAt).TotalMilliseconds;
        _snapshotIndex = image.AppliedIndex;
        _logBytesSinceSnapshot = 0;

        // Snapshots are written one after another (a request may come while one is being written).
        var previous = _snapshotWrite;
        _snapshotWrite = previous.ContinueWith(
            _ => WriteSnapshot(image, captureMs),
            CancellationToken.None,
            TaskContinuationOptions.LongRunning,
            TaskScheduler.Default);
        return _snapshotWrite;
    }

    private void WriteSnapshot(StateSnapshot image, double captureMs)
    {
        if (_failure is not null)
        {
            throw new EtcdException(EtcdError.Stopped);
        }

        var startedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            _wal!.WriteSnapshot(image.AppliedIndex, image.WriteTo);
        }
        catch (Exception e)
        {
            // The log's state on disk is unknown after a failed snapshot write: stop taking writes.
            _failure ??= e;
            _logger.LogCritical(e, "Writing a snapshot failed; the node refuses further writes");
            throw;
        }

        var sizeBytes = _wal.LatestSnapshot?.SizeBytes ?? 0;
        Volatile.Write(ref _snapshotSizeBytes, sizeBytes);
        _logger.LogInformation(
            "Snapshot written at index {Index}: {SizeBytes} bytes in {ElapsedMs:F0} ms (writes waited {CaptureMs:F1} ms for the capture)",
            image.AppliedIndex, sizeBytes, System.Diagnostics.Stopwatch.GetElapsedTime(startedAt).TotalMilliseconds, captureMs);
    }

    private static void FailAll(List<Pending> batch)
    {
        foreach (var pending in batch)
        {
            pending.Completion.TrySetException(new EtcdException(EtcdError.Stopped));
        }
    }

    /// <summary>A command waiting for the log, or (Command null) a snapshot request.</summary>
    private sealed class Pending(Command? command)
    {
        public Command? Command { get; } = command;

        public TaskCompletionSource<CommandResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Index { get; set; }
    }
}
