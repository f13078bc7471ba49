using System.Threading.Channels;
using Arbiter.Core;
using Arbiter.Protocol.Internal;
using Arbiter.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Log;

/// <summary>
/// The single-node log: one writer loop takes every command waiting, appends them all to the
/// write-ahead log, fsyncs once (group commit), then applies them in order and answers. A
/// command is acknowledged only after its fsync. Without a data directory it keeps nothing.
/// </summary>
internal sealed class LocalCommandLog : ICommandLog
{
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(
        new UnboundedChannelOptions { SingleReader = true });
    private readonly StateHost _host;
    private readonly WriteAheadLog? _wal;
    private readonly NodeOptions _options;
    private readonly ILogger _logger;
    private readonly Task _loop;
    private long _appliedIndex;
    private long _snapshotIndex;
    private Exception? _failure;

    public LocalCommandLog(StateHost host, WriteAheadLog? wal, long appliedIndex, NodeOptions options, ILogger logger)
    {
        _host = host;
        _wal = wal;
        _options = options;
        _logger = logger;
        _appliedIndex = appliedIndex;
        _snapshotIndex = appliedIndex;
        _loop = Task.Factory.StartNew(RunLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    public long AppliedIndex => Volatile.Read(ref _appliedIndex);

    public long CommittedIndex => AppliedIndex;

    public bool HasLeader => _failure is null;

    public bool IsLeader => true;

    /// <summary>Set by the node: a single node leads itself.</summary>
    public ulong LeaderId { get; set; }

    public ulong Term => 1;

    public ValueTask WaitLinearizableAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public Task<CommandResult> ProposeAsync(Command command, CancellationToken cancellationToken)
    {
        if (_failure is not null)
        {
            throw new EtcdException(EtcdError.Stopped);
        }

        var pending = new Pending(command);
        if (!_queue.Writer.TryWrite(pending))
        {
            throw new EtcdException(EtcdError.Stopped);
        }

        // The command may still be applied after the caller gives up; that is fine (etcd does the same).
        return cancellationToken.CanBeCanceled
            ? pending.Completion.Task.WaitAsync(cancellationToken)
            : pending.Completion.Task;
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private void RunLoop()
    {
        var reader = _queue.Reader;
        var batch = new List<Pending>(_options.BatchCommandsMax);
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            batch.Clear();
            while (batch.Count < _options.BatchCommandsMax && reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }

            if (_failure is not null)
            {
                FailAll(batch, _failure);
                continue;
            }

            try
            {
                WriteDurably(batch);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Nothing of this batch is acknowledged; the node stops taking writes rather than
                // risk acknowledging something that is not on disk.
                _failure = e;
                _logger.LogCritical(e, "Write-ahead log failed; the node refuses further writes");
                FailAll(batch, e);
                continue;
            }

            foreach (var pending in batch)
            {
                if (pending.Command is null)
                {
                    continue;
                }

                ApplyOutcome outcome;
                try
                {
                    outcome = _host.Apply(pending.Index, pending.Command);
                }
                catch (Exception e)
                {
                    // A broken invariant in the core: stop, never continue with a state we do not trust.
                    _failure = e;
                    _logger.LogCritical(e, "Applying command at index {Index} failed; the node refuses further writes", pending.Index);
                    pending.Completion.TrySetException(new EtcdException(EtcdError.Stopped));
                    continue;
                }

                Volatile.Write(ref _appliedIndex, pending.Index);
                pending.Completion.TrySetResult(outcome.Result);
            }

            MaybeSnapshot(batch.Exists(p => p.Command is null));
            foreach (var pending in batch)
            {
                if (pending.Command is null)
                {
                    pending.Completion.TrySetResult(new CommandResult());
                }
            }
        }

        if (_wal is not null && _failure is null)
        {
            _wal.Flush();
        }
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
                pending.Index = _wal.Append(pending.Command.ToByteArray());
            }
        }

        _wal.Flush();
    }

    /// <summary>Writes a snapshot (on the writer loop, as the log has one writer) so that older segments can go.</summary>
    public Task SnapshotAsync(CancellationToken cancellationToken)
    {
        var pending = new Pending(null);
        if (!_queue.Writer.TryWrite(pending))
        {
            throw new EtcdException(EtcdError.Stopped);
        }

        return pending.Completion.Task.WaitAsync(cancellationToken);
    }

    private void MaybeSnapshot(bool requested)
    {
        if (_wal is null || _failure is not null || _appliedIndex == _snapshotIndex)
        {
            return;
        }

        if (requested || _appliedIndex - _snapshotIndex >= _options.SnapshotEveryEntries)
        {
            TakeSnapshot();
        }
    }

    private void TakeSnapshot()
    {
        if (_wal is null)
        {
            return;
        }

        var index = _appliedIndex;
        _host.Read(state =>
        {
            _wal.WriteSnapshot(state.AppliedIndex, stream => state.WriteSnapshot(stream));
            return 0;
        });
        _snapshotIndex = index;
        _logger.LogInformation("Snapshot written at index {Index}", index);
    }

    private static void FailAll(List<Pending> batch, Exception cause)
    {
        _ = cause;
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
