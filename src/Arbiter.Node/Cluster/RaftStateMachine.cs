using System.Buffers;
using Arbiter.Core;
using Arbiter.Protocol.Internal;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

/// <summary>
/// The bridge from DotNext's Raft log to our deterministic core: each committed entry is a
/// <see cref="CommandBatch"/> applied command by command; snapshots are the core's own snapshot
/// format, written by DotNext beside the log and shipped to members that fall too far behind.
/// </summary>
internal sealed class RaftStateMachine : SimpleStateMachine
{
    private readonly StateHost _host;
    private readonly CoreLimits _limits;
    private readonly int _snapshotEveryEntries;
    private readonly ILogger _logger;
    private readonly Action<Command, CommandResult, long> _applied;
    private long _raftAppliedIndex;
    private long _snapshotIndex;
    private volatile bool _failed;
    private volatile bool _snapshotRequested;

    public RaftStateMachine(DirectoryInfo location, StateHost host, CoreLimits limits, int snapshotEveryEntries, Action<Command, CommandResult, long> applied, ILogger logger)
        : base(location)
    {
        _host = host;
        _limits = limits;
        _snapshotEveryEntries = snapshotEveryEntries;
        _applied = applied;
        _logger = logger;
    }

    /// <summary>Raft index of the last entry applied to the core (0 before the first).</summary>
    public long RaftAppliedIndex => Volatile.Read(ref _raftAppliedIndex);

    /// <summary>Asks for a snapshot after the next applied entry.</summary>
    public void RequestSnapshot() => _snapshotRequested = true;

    /// <summary>Whether applying failed (a broken invariant): the member then refuses to serve.</summary>
    public bool Failed => _failed;

    protected override ValueTask<bool> ApplyAsync(LogEntry entry, CancellationToken token)
    {
        if (_failed)
        {
            // Never apply past a command we could not apply: the state would diverge silently.
            throw new InvalidOperationException("The state machine stopped after a failed apply.");
        }

        if (!entry.IsConfiguration && entry.TryGetPayload(out var payload) && !payload.IsEmpty)
        {
            var batch = CommandBatch.Parser.ParseFrom(payload);
            foreach (var command in batch.Commands)
            {
                ApplyOne(entry.Index, command);
            }
        }

        // Empty entries are the no-ops a new leader appends to commit its term.
        Volatile.Write(ref _raftAppliedIndex, entry.Index);
        var snapshotDue = _snapshotRequested || entry.Index - _snapshotIndex >= _snapshotEveryEntries;
        if (snapshotDue)
        {
            _snapshotIndex = entry.Index;
            _snapshotRequested = false;
        }

        return ValueTask.FromResult(snapshotDue);
    }

    private void ApplyOne(long raftIndex, Command command)
    {
        ApplyOutcome outcome;
        try
        {
            // The core counts commands, not Raft entries: an entry carries a batch.
            outcome = _host.ApplyNext(command);
        }
        catch (Exception e)
        {
            _failed = true;
            _logger.LogCritical(e, "Applying a command of Raft entry {Index} failed; the member stops serving", raftIndex);
            throw;
        }

        _applied(command, outcome.Result, raftIndex);
    }

    protected override ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token)
    {
        // Runs while no entry is being applied (DotNext waits for it before the next apply).
        // Capture under the lock, serialize outside it: readers are not held up by the serialization.
        var image = _host.Read(state => state.CaptureSnapshot());
        using var buffer = new MemoryStream();
        image.WriteTo(buffer);
        _logger.LogInformation("Raft snapshot at applied index {Index}: {SizeBytes} bytes", RaftAppliedIndex, buffer.Length);
        return writer.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), lengthFormat: null, token);
    }

    protected override ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token)
    {
        using (var stream = snapshotFile.OpenRead())
        {
            var state = StateMachine.ReadSnapshot(stream, _limits);
            _host.Replace(state);
        }

        var index = long.Parse(snapshotFile.Name.Split('-')[0], System.Globalization.CultureInfo.InvariantCulture);
        Volatile.Write(ref _raftAppliedIndex, index);
        _snapshotIndex = index;
        if (index == 0)
        {
            // The seed of a cluster restored from a backup (arbiter snapshot restore): a real snapshot
            // after the first entry, so that the log can be compacted and a member that joins later is
            // sent the state rather than a log that starts on top of a seed it lacks.
            _snapshotRequested = true;
        }
        _logger.LogInformation("Installed Raft snapshot at index {Index} ({SizeBytes} bytes)", index, snapshotFile.Length);
        return ValueTask.CompletedTask;
    }
}
