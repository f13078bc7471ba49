using System.Buffers;
using Arbiter.Core;
using Arbiter.Protocol.Internal;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

/// <summary>
/// The bridge from DotNext's Raft log to our deterministic core: each committed entry is a
/// <see cref="CommandBatch"/> applied command by command. A snapshot's state image (the core's
/// own snapshot format) is kept in <see cref="SnapshotImages"/>; DotNext's snapshot file, which
/// DotNext ships to members that fall too far behind, holds only its <see cref="SnapshotTicket"/>
/// (data dirs from before, and restored seeds, hold a full image there, which still loads).
/// </summary>
internal sealed class RaftStateMachine : SimpleStateMachine
{
    private readonly StateHost _host;
    private readonly CoreLimits _limits;
    private readonly int _snapshotEveryEntries;
    private readonly long _snapshotEveryLogBytes;
    private readonly ILogger _logger;
    private readonly Action<Command, CommandResult, long> _applied;
    private readonly DirectoryInfo _snapshotDirectory;
    private readonly SnapshotImages _images;
    private readonly object _fetchGate = new();
    private long _raftAppliedIndex;
    private long _snapshotIndex;
    private long _snapshotTerm;
    private Task? _fetch;
    private SnapshotTicket? _fetching;
    private (SnapshotTicket Ticket, StateMachine State)? _prepared;
    private volatile bool _failed;
    private volatile bool _snapshotRequested;

    /// <summary>Payload bytes of the entries applied since the last snapshot: the log DotNext keeps (in memory, by default) until the next one.</summary>
    private long _logBytesSinceSnapshot;

    /// <summary>Size of the last snapshot's image (0 before the first).</summary>
    private long _snapshotSizeBytes;

    public RaftStateMachine(DirectoryInfo location, SnapshotImages images, StateHost host, CoreLimits limits, int snapshotEveryEntries, long snapshotEveryLogBytes, Action<Command, CommandResult, long> applied, ILogger logger)
        : base(location)
    {
        _snapshotDirectory = location;
        _images = images;
        _host = host;
        _limits = limits;
        _snapshotEveryEntries = snapshotEveryEntries;
        _snapshotEveryLogBytes = snapshotEveryLogBytes;
        _applied = applied;
        _logger = logger;
    }

    /// <summary>Raft index of the last entry applied to the core (0 before the first).</summary>
    public long RaftAppliedIndex => Volatile.Read(ref _raftAppliedIndex);

    /// <summary>Index of the newest snapshot taken or installed here (0 before the first).</summary>
    public long SnapshotIndex => Volatile.Read(ref _snapshotIndex);

    /// <summary>The last snapshot installed from a leader's ticket, and when (null before the first).</summary>
    public (long Index, DateTime AtUtc)? LastInstall { get; private set; }

    /// <summary>Whether a snapshot image is being fetched from the leader.</summary>
    public bool IsFetchingImage
    {
        get
        {
            lock (_fetchGate)
            {
                return _fetch is { IsCompleted: false };
            }
        }
    }

    /// <summary>Asks for a snapshot after the next applied entry.</summary>
    public void RequestSnapshot() => _snapshotRequested = true;

    /// <summary>
    /// Fetches a snapshot's image from the leader into the stream (set once the member's gRPC
    /// channels exist; null while the member starts, when only images on disk are installed).
    /// </summary>
    public Func<SnapshotTicket, Stream, CancellationToken, Task>? FetchImage { get; set; }

    /// <summary>This member's advertised client URLs, written into its snapshot tickets (where a follower that knows no member can fetch the image).</summary>
    public string? OwnClientUrls { get; set; }

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
            _logBytesSinceSnapshot += payload.Length;
            var batch = CommandBatch.Parser.ParseFrom(payload);
            foreach (var command in batch.Commands)
            {
                ApplyOne(entry.Index, command);
            }
        }

        // Empty entries are the no-ops a new leader appends to commit its term.
        Volatile.Write(ref _raftAppliedIndex, entry.Index);
        var snapshotDue = _snapshotRequested
            || entry.Index - _snapshotIndex >= _snapshotEveryEntries
            || LogOutgrewItsBound();
        if (snapshotDue)
        {
            Volatile.Write(ref _snapshotIndex, entry.Index);
            _snapshotTerm = entry.Term;
            _snapshotRequested = false;
            _logBytesSinceSnapshot = 0;
        }

        return ValueTask.FromResult(snapshotDue);
    }

    /// <summary>
    /// Whether the log since the last snapshot holds more bytes than the byte bound, or than that
    /// snapshot's image if it is larger: an entry is a batch of up to 1 MiB, so the entry count alone
    /// lets large values fill memory before a snapshot; measuring against the image as well keeps
    /// the work of snapshotting a large state per logged byte at most one (as the single node's rule).
    /// </summary>
    private bool LogOutgrewItsBound() =>
        _snapshotEveryLogBytes > 0 && _logBytesSinceSnapshot >= Math.Max(_snapshotEveryLogBytes, Volatile.Read(ref _snapshotSizeBytes));

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
        var ticket = _images.Write(_snapshotIndex, _snapshotTerm, image.WriteTo) with { SourceClientUrls = OwnClientUrls };
        Volatile.Write(ref _snapshotSizeBytes, ticket.LengthBytes);
        _logger.LogInformation("Raft snapshot at applied index {Index}: {SizeBytes} bytes", RaftAppliedIndex, ticket.LengthBytes);
        DeleteUnreferencedImages(_snapshotIndex);
        return writer.WriteAsync(ticket.ToBytes(), lengthFormat: null, token);
    }

    protected override ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token)
    {
        var index = long.Parse(snapshotFile.Name.Split('-')[0], System.Globalization.CultureInfo.InvariantCulture);
        var ticket = SnapshotTicket.TryRead(snapshotFile);
        long sizeBytes;
        if (ticket is null)
        {
            using var stream = snapshotFile.OpenRead();
            _host.Replace(StateMachine.ReadSnapshot(stream, _limits, _host.ValueSpill));
            sizeBytes = snapshotFile.Length;
        }
        else
        {
            // While the member starts, only an image on disk is installed; from a leader, only a state
            // parsed beforehand (parsing tens of MB here would outlast the install request again).
            _host.Replace(FetchImage is null
                ? ReadImage(ticket) ?? throw new InvalidDataException(
                    $"Raft snapshot {ticket} names an image this member does not have ({_images.PathOf(ticket.Index, ticket.Term)})")
                : TakePrepared(ticket) ?? throw FetchInBackground(ticket, FetchImage));
            sizeBytes = ticket.LengthBytes;
            if (FetchImage is not null)
            {
                LastInstall = (index, DateTime.UtcNow); // from a leader (not the member's own start)
            }
        }

        Volatile.Write(ref _raftAppliedIndex, index);
        Volatile.Write(ref _snapshotIndex, index);
        Volatile.Write(ref _snapshotSizeBytes, sizeBytes);
        _logBytesSinceSnapshot = 0;
        if (index == 0)
        {
            // The seed of a cluster restored from a backup (arbiter snapshot restore): a real snapshot
            // after the first entry, so that the log can be compacted and a member that joins later is
            // sent the state rather than a log that starts on top of a seed it lacks.
            _snapshotRequested = true;
        }
        _logger.LogInformation("Installed Raft snapshot at index {Index} ({SizeBytes} bytes)", index, sizeBytes);
        return ValueTask.CompletedTask;
    }

    private StateMachine? TakePrepared(SnapshotTicket ticket)
    {
        lock (_fetchGate)
        {
            if (_prepared is { } prepared && prepared.Ticket == ticket)
            {
                _prepared = null;
                return prepared.State;
            }

            return null;
        }
    }

    private StateMachine? ReadImage(SnapshotTicket ticket)
    {
        if (!_images.Has(ticket))
        {
            return null;
        }

        using var image = _images.TryOpen(ticket.Index, ticket.Term);
        return image is null ? null : StateMachine.ReadSnapshot(image, _limits, _host.ValueSpill);
    }

    /// <summary>
    /// Starts fetching and parsing the ticket's image (once), and fails this install: DotNext's
    /// install request would time out long before a large image arrived, and the leader resends
    /// the ticket until the prepared state is ready and the install completes at once.
    /// </summary>
    private SnapshotImageNotReadyException FetchInBackground(SnapshotTicket ticket, Func<SnapshotTicket, Stream, CancellationToken, Task> fetchImage)
    {
        lock (_fetchGate)
        {
            if (_fetch is null || (_fetch.IsCompleted && _prepared?.Ticket != ticket))
            {
                _fetching = ticket;
                _fetch = Task.Run(() => FetchAndPrepareAsync(ticket, fetchImage));
                _logger.LogInformation("Preparing Raft snapshot {Ticket} (its image fetched from the leader, or another member, unless already here)", ticket);
            }
            else if (_fetching != ticket)
            {
                // A newer ticket while an older fetch runs: that one finishes first, then this one starts.
                _logger.LogDebug("Raft snapshot {Index}-{Term} waits for the fetch of {Other}", ticket.Index, ticket.Term, _fetching);
            }
        }

        return new SnapshotImageNotReadyException(ticket);
    }

    private async Task FetchAndPrepareAsync(SnapshotTicket ticket, Func<SnapshotTicket, Stream, CancellationToken, Task> fetchImage)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            if (!_images.Has(ticket))
            {
                await _images.StoreAsync(ticket, (destination, token) => fetchImage(ticket, destination, token), CancellationToken.None).ConfigureAwait(false);
            }

            var state = ReadImage(ticket) ?? throw new InvalidDataException($"the fetched image of Raft snapshot {ticket.Index}-{ticket.Term} vanished");
            lock (_fetchGate)
            {
                _prepared = (ticket, state);
            }

            _logger.LogInformation(
                "Image of Raft snapshot {Index}-{Term} fetched and parsed in {ElapsedMs} ms; installed at the leader's next try",
                ticket.Index, ticket.Term, clock.ElapsedMilliseconds);
        }
        catch (Exception e)
        {
            _logger.LogWarning("Fetching the image of Raft snapshot {Index}-{Term} failed after {ElapsedMs} ms ({Reason}); the leader's next try starts again",
                ticket.Index, ticket.Term, clock.ElapsedMilliseconds, e.Message);
        }
    }

    private void DeleteUnreferencedImages(long keepFromIndex)
    {
        try
        {
            var referenced = new HashSet<string>(_snapshotDirectory.EnumerateFiles("*-*").Select(f => f.Name), StringComparer.Ordinal);
            _images.DeleteUnreferenced(keepFromIndex, referenced);
        }
        catch (IOException e)
        {
            _logger.LogWarning("Could not delete old Raft snapshot images: {Reason}", e.Message);
        }
    }
}

/// <summary>An install refused until the snapshot's image is fetched and parsed (the leader retries).</summary>
internal sealed class SnapshotImageNotReadyException(SnapshotTicket ticket)
    : InvalidOperationException($"the image of Raft snapshot {ticket.Index}-{ticket.Term} ({ticket.LengthBytes} bytes) is being fetched; the install is retried");
