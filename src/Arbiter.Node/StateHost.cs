using Arbiter.Core;
using Arbiter.Node.Watch;
using Arbiter.Protocol.Internal;

namespace Arbiter.Node;

/// <summary>
/// Owns the state machine and serializes access to it: many concurrent readers, one applier.
/// Watch events are published while the write lock is held, so a reader that registers a
/// watcher under the read lock can never miss or double-see a revision.
/// </summary>
internal sealed class StateHost : IDisposable
{
    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);
    private StateMachine _state;
    private TaskCompletionSource _transactionsChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completed (and cleared) when the state moves on; created by whoever waits for a revision.</summary>
    private TaskCompletionSource? _advanced;

    /// <summary>The credential derived from the state's peer secret (null while it has none); set after each change of the secret.</summary>
    private string? _peerCredential;

    public StateHost(StateMachine state, WatchHub watches)
    {
        _state = state;
        Watches = watches;
        UpdatePeerCredential();
    }

    /// <summary>
    /// What this member's calls to other members' internal services carry, and what it expects of
    /// theirs: derived from the cluster's peer secret, null until this member has applied one.
    /// </summary>
    public string? PeerCredential => Volatile.Read(ref _peerCredential);

    public WatchHub Watches { get; }

    /// <summary>
    /// Completes at the next applied command that can change the lock table (a transaction command,
    /// a lease revoke, expiry or promotion, a snapshot install). Take it before reading the state,
    /// then await it: no change between the read and the await is missed.
    /// </summary>
    public Task TransactionsChanged => Volatile.Read(ref _transactionsChanged).Task;

    public T Read<T>(Func<StateMachine, T> read)
    {
        _lock.EnterReadLock();
        try
        {
            return read(_state);
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>The last transaction id, lock request sequence and fencing token the lock table handed out.</summary>
    public (long TxnId, long Sequence, long FencingToken) TransactionIdentifiers => Read(static s => s.LastTransactionIdentifiers);

    /// <summary><see cref="TransactionIdentifiers"/> and the deadlocks the lock table broke so far, in one read.</summary>
    public TransactionCounters TransactionCounters => Read(static s => new TransactionCounters(s.LastTransactionIdentifiers, s.TransactionDeadlocks));

    /// <summary>The store revision this member has applied.</summary>
    public long Revision => Read(static s => s.Revision);

    /// <summary>Where the state pages out its versions (the same for every state this host holds), or null.</summary>
    public Arbiter.Core.Mvcc.IValueSpill? ValueSpill => Volatile.Read(ref _state).ValueSpill;

    /// <summary>
    /// Completes once the applied revision is at least <paramref name="revision"/> (at once if it is).
    /// Cancellation ends the wait with <see cref="OperationCanceledException"/>.
    /// </summary>
    public async ValueTask WaitRevisionAsync(long revision, CancellationToken cancellationToken)
    {
        while (true)
        {
            // The signal exists before the revision is read, so an apply after the read completes it.
            var signal = Volatile.Read(ref _advanced);
            if (signal is null)
            {
                var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                signal = Interlocked.CompareExchange(ref _advanced, created, null) ?? created;
            }

            if (Revision >= revision)
            {
                return;
            }

            await signal.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Applies <paramref name="command"/> as the next command (index after the applied one), under one write lock.</summary>
    public ApplyOutcome ApplyNext(Command command) => Apply(index: null, command);

    public ApplyOutcome Apply(long index, Command command) => Apply((long?)index, command);

    private ApplyOutcome Apply(long? index, Command command)
    {
        _lock.EnterWriteLock();
        try
        {
            var outcome = _state.Apply(index ?? _state.AppliedIndex + 1, command);
            if (outcome.Events.Count > 0 || command.OpCase == Command.OpOneofCase.Compaction)
            {
                Watches.Publish(outcome.Events, _state.Revision, _state.CompactRevision);
            }

            if (ChangesTransactions(command.OpCase))
            {
                PulseTransactions();
            }

            if (command.OpCase == Command.OpOneofCase.PeerSecretSet)
            {
                UpdatePeerCredential();
            }

            return outcome;
        }
        finally
        {
            _lock.ExitWriteLock();
            SignalAdvanced();
        }
    }

    private static bool ChangesTransactions(Command.OpOneofCase op) => op is Command.OpOneofCase.TxnBegin or Command.OpOneofCase.TxnLock
        or Command.OpOneofCase.TxnCommit or Command.OpOneofCase.TxnAbort or Command.OpOneofCase.TxnOptimisticCommit
        or Command.OpOneofCase.TxnTimers or Command.OpOneofCase.LeaseRevoke or Command.OpOneofCase.LeaseExpire or Command.OpOneofCase.LeasePromote;

    private void PulseTransactions() =>
        Interlocked.Exchange(ref _transactionsChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// Replaces the whole state (a snapshot installed from the leader). Watchers in sync fall back
    /// to catching up from the new state's history, so they neither miss nor repeat a revision.
    /// </summary>
    public void Replace(StateMachine state)
    {
        _lock.EnterWriteLock();
        try
        {
            _state = state;
            UpdatePeerCredential();
            Watches.ResyncAll();
            PulseTransactions();
        }
        finally
        {
            _lock.ExitWriteLock();
            SignalAdvanced();
        }
    }

    public void Dispose() => _lock.Dispose();

    /// <summary>Called with the state fixed (constructor, or under the write lock).</summary>
    private void UpdatePeerCredential() =>
        Volatile.Write(ref _peerCredential, _state.PeerSecret.IsEmpty ? null : Security.PeerCredential.Derive(_state.PeerSecret));

    /// <summary>Wakes revision waiters (nothing to do, one volatile read, when nobody waits).</summary>
    private void SignalAdvanced()
    {
        if (Volatile.Read(ref _advanced) is not null)
        {
            Interlocked.Exchange(ref _advanced, null)?.TrySetResult();
        }
    }
}

/// <summary>The lock table's numbers at one moment: the last transaction id, lock request sequence and fencing token handed out, and the deadlocks broken.</summary>
internal readonly record struct TransactionCounters((long TxnId, long Sequence, long FencingToken) Identifiers, long Deadlocks);
