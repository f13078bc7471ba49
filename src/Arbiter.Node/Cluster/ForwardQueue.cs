using Arbiter.Protocol.Internal;
using Grpc.Core;

namespace Arbiter.Node.Cluster;

/// <summary>
/// A follower's writes on their way to one leader URL: while <see cref="CallsInFlightMax"/> calls
/// are already under way, the commands that arrive meanwhile wait here and leave together in the
/// next <c>Peer.ProposeBatch</c> call. A write that finds a free call slot leaves at once, so a
/// lone write pays nothing; under load one call (one gRPC request on each side) carries many.
/// Each command still ends as its own <c>Propose</c> call would have: with its result, or with an
/// <see cref="RpcException"/> of the same status (the call's own failure, or its command's error).
/// </summary>
internal sealed class ForwardQueue
{
    /// <summary>Batch calls under way at once to one leader.</summary>
    public const int CallsInFlightMax = 4;

    /// <summary>Commands in one batch call.</summary>
    public const int CommandsPerCallMax = 256;

    private readonly Func<ProposeBatchRequest, CancellationToken, Task<ProposeBatchResponse>> _send;
    private readonly Func<CancellationToken> _callToken;
    private readonly int _batchSizeBytesMax;
    private readonly Action _abandonedInFlight;
    private readonly object _gate = new();
    private readonly Queue<Pending> _queue = new();
    private int _callsInFlight;

    /// <param name="send">Makes one <c>ProposeBatch</c> call.</param>
    /// <param name="callToken">The token a call is made under (the leader epoch: a leader change cuts it).</param>
    /// <param name="batchSizeBytesMax">Serialized commands in one call at most (one larger command still goes, alone).</param>
    /// <param name="abandonedInFlight">
    /// Called when a command already sent is given up on without an answer (its call cut or
    /// broken, or its caller gone): the connection may still hold it unsent, to be delivered
    /// whenever the network lets it through, so the caller aborts the connections to the leader.
    /// </param>
    public ForwardQueue(Func<ProposeBatchRequest, CancellationToken, Task<ProposeBatchResponse>> send, Func<CancellationToken> callToken, int batchSizeBytesMax, Action abandonedInFlight)
    {
        _send = send;
        _callToken = callToken;
        _batchSizeBytesMax = batchSizeBytesMax;
        _abandonedInFlight = abandonedInFlight;
    }

    /// <summary>
    /// Sends <paramref name="command"/> with the next call. Cancelling stops the wait (as an
    /// <see cref="RpcException"/> with <see cref="StatusCode.Cancelled"/>, as a cancelled call
    /// ends); a command already sent may still be applied.
    /// </summary>
    public Task<ForwardedResult> SendAsync(Command command, CancellationToken cancellationToken)
    {
        var pending = new Pending(command, command.CalculateSize(), _abandonedInFlight, cancellationToken);
        bool startCall;
        lock (_gate)
        {
            _queue.Enqueue(pending);
            startCall = _callsInFlight < CallsInFlightMax;
            if (startCall)
            {
                _callsInFlight++;
            }
        }

        if (startCall)
        {
            _ = Task.Run(PumpAsync, CancellationToken.None);
        }

        return pending.Task;
    }

    /// <summary>One call slot: sends what is queued, batch after batch, until the queue is empty.</summary>
    private async Task PumpAsync()
    {
        while (true)
        {
            var batch = new List<Pending>();
            lock (_gate)
            {
                var sizeBytes = 0;
                while (_queue.TryPeek(out var next) && batch.Count < CommandsPerCallMax
                    && (batch.Count == 0 || sizeBytes + next.SizeBytes <= _batchSizeBytesMax))
                {
                    _queue.Dequeue();
                    if (!next.TryMarkSent())
                    {
                        continue; // its caller gave up before it was sent
                    }

                    batch.Add(next);
                    sizeBytes += next.SizeBytes;
                }

                if (batch.Count == 0 && _queue.Count == 0)
                {
                    _callsInFlight--;
                    return;
                }
            }

            if (batch.Count > 0)
            {
                await SendBatchAsync(batch).ConfigureAwait(false);
            }
        }
    }

    private async Task SendBatchAsync(List<Pending> batch)
    {
        var request = new ProposeBatchRequest();
        foreach (var pending in batch)
        {
            request.Commands.Add(pending.Command);
        }

        try
        {
            var response = await _send(request, _callToken()).ConfigureAwait(false);
            if (response.Outcomes.Count != batch.Count)
            {
                throw new RpcException(new Status(StatusCode.Internal, $"the leader answered {response.Outcomes.Count} outcomes for {batch.Count} forwarded commands"));
            }

            for (var i = 0; i < batch.Count; i++)
            {
                var outcome = response.Outcomes[i];
                if (outcome.ErrorCode == 0)
                {
                    batch[i].Complete(outcome.Result);
                }
                else
                {
                    batch[i].Fail(new RpcException(new Status((StatusCode)outcome.ErrorCode, outcome.ErrorMessage)));
                }
            }
        }
        catch (Exception e)
        {
            // The call failed as a whole: every command ends as its own call would have.
            var failure = e as RpcException ?? new RpcException(new Status(e is OperationCanceledException ? StatusCode.Cancelled : StatusCode.Unavailable, e.Message, e));
            if (!AnsweredByLeader(failure))
            {
                _abandonedInFlight();
            }

            foreach (var pending in batch)
            {
                pending.Fail(failure);
            }
        }
    }

    /// <summary>
    /// A status the leader sent (its call ended with an answer, so nothing of it waits in the
    /// connection), as opposed to a call cut here or broken in transport.
    /// </summary>
    internal static bool AnsweredByLeader(RpcException e)
        => e.StatusCode is not (StatusCode.Cancelled or StatusCode.DeadlineExceeded) && e.Status.DebugException is null;

    /// <summary>A command waiting for its call, and the caller waiting for its outcome.</summary>
    private sealed class Pending
    {
        private readonly TaskCompletionSource<ForwardedResult> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenRegistration _registration;
        private readonly Action _abandonedInFlight;
        private int _stage; // Queued, Sent or AbandonedUnsent: whether a caller that gives up leaves it in a connection

        public Pending(Command command, int sizeBytes, Action abandonedInFlight, CancellationToken cancellationToken)
        {
            Command = command;
            SizeBytes = sizeBytes;
            _abandonedInFlight = abandonedInFlight;
            _registration = cancellationToken.UnsafeRegister(static state => ((Pending)state!).Abandon(), this);
        }

        public Command Command { get; }

        public int SizeBytes { get; }

        public Task<ForwardedResult> Task => _outcome.Task;

        private const int Queued = 0;
        private const int Sent = 1;
        private const int AbandonedUnsent = 2;

        /// <summary>Takes it into a call, from then on it may reach the leader; false when its caller gave up first (not worth sending).</summary>
        public bool TryMarkSent() => Interlocked.CompareExchange(ref _stage, Sent, Queued) == Queued;

        private void Abandon()
        {
            // Either it is marked unsent first, and the call never takes it, or it was taken, and
            // the connections that may hold it are aborted.
            if (_outcome.TrySetException(new RpcException(new Status(StatusCode.Cancelled, "The forwarded call was cancelled.")))
                && Interlocked.CompareExchange(ref _stage, AbandonedUnsent, Queued) == Sent)
            {
                _abandonedInFlight();
            }
        }

        public void Complete(ForwardedResult result)
        {
            _outcome.TrySetResult(result);
            _registration.Dispose();
        }

        public void Fail(RpcException error)
        {
            _outcome.TrySetException(error);
            _registration.Dispose();
        }
    }
}
