using Arbiter.Node.Cluster;
using Arbiter.Protocol.Internal;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>
/// The follower's queue of forwarded writes: a lone write leaves at once; writes that arrive while
/// every call slot is busy share the next call; each write ends with its own result or error, as
/// its own Propose call would have. The leader here is a function that records each call and
/// answers when the test lets it (the real path runs in every cluster test).
/// </summary>
public sealed class ForwardQueueTests
{
    /// <summary>How long a test waits for an outcome before it fails (instead of hanging).</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static Command CommandOf(ulong requestId, int payloadBytes = 0) =>
        new() { RequestId = requestId, AuthUser = new string('x', payloadBytes) };

    /// <summary>A leader that holds every call until released, then answers each command with its request id as the raft index.</summary>
    private sealed class HeldLeader
    {
        private readonly object _gate = new();
        private readonly List<(ProposeBatchRequest Request, TaskCompletionSource Release)> _calls = [];
        private int _abortsAsked;

        /// <summary>How many times the queue asked for the connections to this leader to be aborted.</summary>
        public int AbortsAsked => Volatile.Read(ref _abortsAsked);

        public void AbortConnections() => Interlocked.Increment(ref _abortsAsked);

        public Func<Command, ForwardedOutcome> Answer { get; init; } = command => new ForwardedOutcome { Result = new ForwardedResult { RaftIndex = (long)command.RequestId } };

        public List<ProposeBatchRequest> Calls
        {
            get
            {
                lock (_gate)
                {
                    return _calls.Select(c => c.Request).ToList();
                }
            }
        }

        public async Task<ProposeBatchResponse> SendAsync(ProposeBatchRequest request, CancellationToken cancellationToken)
        {
            var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_gate)
            {
                _calls.Add((request.Clone(), release));
            }

            await release.Task.WaitAsync(cancellationToken);
            var response = new ProposeBatchResponse();
            response.Outcomes.AddRange(request.Commands.Select(Answer));
            return response;
        }

        public void ReleaseAll()
        {
            lock (_gate)
            {
                foreach (var (_, release) in _calls)
                {
                    release.TrySetResult();
                }
            }
        }

        public async Task WaitForCallsAsync(int count)
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (Calls.Count < count)
            {
                await Task.Delay(5, deadline.Token);
            }
        }
    }

    private static ForwardQueue QueueFor(HeldLeader leader, int batchSizeBytesMax = 1 << 20) =>
        new(leader.SendAsync, () => CancellationToken.None, batchSizeBytesMax, leader.AbortConnections);

    /// <summary>
    /// Takes every call slot with one write each (one at a time: writes sent together may share a
    /// call), request ids from <paramref name="firstRequestId"/>.
    /// </summary>
    private static async Task<List<Task<ForwardedResult>>> FillCallSlotsAsync(ForwardQueue queue, HeldLeader leader, int firstRequestId)
    {
        var writes = new List<Task<ForwardedResult>>();
        for (var i = 0; i < ForwardQueue.CallsInFlightMax; i++)
        {
            writes.Add(queue.SendAsync(CommandOf((ulong)(firstRequestId + i)), CancellationToken.None));
            await leader.WaitForCallsAsync(i + 1);
        }

        return writes;
    }

    [Fact]
    public async Task A_lone_write_leaves_at_once_in_its_own_call()
    {
        var leader = new HeldLeader();
        var queue = QueueFor(leader);
        var write = queue.SendAsync(CommandOf(7), CancellationToken.None);
        await leader.WaitForCallsAsync(1);
        leader.ReleaseAll();

        Assert.Equal(7, (await write).RaftIndex);
        Assert.Single(leader.Calls);
        Assert.Single(leader.Calls[0].Commands);
    }

    [Fact]
    public async Task Writes_that_arrive_while_every_call_is_busy_share_the_next_call_and_each_gets_its_own_result()
    {
        var leader = new HeldLeader();
        var queue = QueueFor(leader);
        var first = await FillCallSlotsAsync(queue, leader, 1);

        // Every slot is busy: these wait, then leave together.
        var queued = Enumerable.Range(100, 10).Select(i => queue.SendAsync(CommandOf((ulong)i), CancellationToken.None)).ToList();
        Assert.Equal(ForwardQueue.CallsInFlightMax, leader.Calls.Count);
        leader.ReleaseAll();
        await leader.WaitForCallsAsync(ForwardQueue.CallsInFlightMax + 1);
        leader.ReleaseAll();

        var results = await Task.WhenAll(first.Concat(queued)).WaitAsync(Deadline);
        Assert.Equal(Enumerable.Range(1, ForwardQueue.CallsInFlightMax).Concat(Enumerable.Range(100, 10)).Select(i => (long)i), results.Select(r => r.RaftIndex));
        Assert.Equal(ForwardQueue.CallsInFlightMax + 1, leader.Calls.Count);
        Assert.Equal(Enumerable.Range(100, 10).Select(i => (ulong)i), leader.Calls[^1].Commands.Select(c => c.RequestId));
    }

    [Fact]
    public async Task A_command_error_ends_only_that_command_with_its_status()
    {
        var leader = new HeldLeader
        {
            Answer = command => command.RequestId == 2
                ? new ForwardedOutcome { ErrorCode = (int)StatusCode.Unavailable, ErrorMessage = "etcdserver: leader changed" }
                : new ForwardedOutcome { Result = new ForwardedResult { RaftIndex = (long)command.RequestId } },
        };
        var queue = QueueFor(leader);
        var blockers = await FillCallSlotsAsync(queue, leader, 10);
        var writes = Enumerable.Range(1, 3).Select(i => (ulong)i).Select(id => queue.SendAsync(CommandOf(id), CancellationToken.None)).ToList();
        leader.ReleaseAll();
        await leader.WaitForCallsAsync(ForwardQueue.CallsInFlightMax + 1);
        leader.ReleaseAll();
        await Task.WhenAll(blockers).WaitAsync(Deadline);

        Assert.Equal(1, (await writes[0].WaitAsync(Deadline)).RaftIndex);
        var error = await Assert.ThrowsAsync<RpcException>(() => writes[1]);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Equal("etcdserver: leader changed", error.Status.Detail);
        Assert.Equal(3, (await writes[2]).RaftIndex);
    }

    [Fact]
    public async Task A_failed_call_fails_every_command_in_it_with_the_calls_status()
    {
        var calls = 0;
        var queue = new ForwardQueue(
            (request, _) =>
            {
                Interlocked.Increment(ref calls);
                return Task.FromException<ProposeBatchResponse>(new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.")));
            },
            () => CancellationToken.None,
            1 << 20,
            () => { });

        var errors = await Task.WhenAll(Enumerable.Range(1, 20).Select(async i => await Assert.ThrowsAsync<RpcException>(() => queue.SendAsync(CommandOf((ulong)i), CancellationToken.None))));
        Assert.All(errors, e => Assert.Equal("Error connecting to subchannel.", e.Status.Detail));
        Assert.InRange(calls, 1, 20);
    }

    [Fact]
    public async Task A_write_cancelled_while_queued_ends_cancelled_and_is_not_sent()
    {
        var leader = new HeldLeader();
        var queue = QueueFor(leader);
        var blockers = await FillCallSlotsAsync(queue, leader, 10);
        using var cancel = new CancellationTokenSource();
        var cancelled = queue.SendAsync(CommandOf(1), cancel.Token);
        var kept = queue.SendAsync(CommandOf(2), CancellationToken.None);
        await cancel.CancelAsync();

        var error = await Assert.ThrowsAsync<RpcException>(() => cancelled);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        leader.ReleaseAll();
        await leader.WaitForCallsAsync(ForwardQueue.CallsInFlightMax + 1);
        leader.ReleaseAll();
        Assert.Equal(2, (await kept.WaitAsync(Deadline)).RaftIndex);
        await Task.WhenAll(blockers).WaitAsync(Deadline);
        Assert.DoesNotContain(leader.Calls.SelectMany(c => c.Commands), c => c.RequestId == 1);
        Assert.Equal(0, leader.AbortsAsked); // never sent: nothing of it waits in a connection
    }

    [Fact]
    public async Task A_write_given_up_on_after_it_was_sent_asks_for_the_connections_to_be_aborted()
    {
        var leader = new HeldLeader();
        var queue = QueueFor(leader);
        using var cancel = new CancellationTokenSource();
        var write = queue.SendAsync(CommandOf(1), cancel.Token);
        await leader.WaitForCallsAsync(1);
        await cancel.CancelAsync();

        var error = await Assert.ThrowsAsync<RpcException>(() => write);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        Assert.Equal(1, leader.AbortsAsked);
        leader.ReleaseAll();
    }

    [Fact]
    public async Task A_call_cut_by_a_leader_change_asks_for_the_connections_to_be_aborted_and_an_answered_one_does_not()
    {
        var leader = new HeldLeader { Answer = _ => new ForwardedOutcome { ErrorCode = (int)StatusCode.Unavailable, ErrorMessage = "etcdserver: leader changed" } };
        using var epoch = new CancellationTokenSource();
        var queue = new ForwardQueue(leader.SendAsync, () => epoch.Token, 1 << 20, leader.AbortConnections);

        // Answered (with an error): the call ended, nothing of it is left in the connection.
        var answered = queue.SendAsync(CommandOf(1), CancellationToken.None);
        await leader.WaitForCallsAsync(1);
        leader.ReleaseAll();
        await Assert.ThrowsAsync<RpcException>(() => answered);
        Assert.Equal(0, leader.AbortsAsked);

        // Cut while the leader holds it: it may still sit unsent in the connection.
        var cut = queue.SendAsync(CommandOf(2), CancellationToken.None);
        await leader.WaitForCallsAsync(2);
        await epoch.CancelAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => cut);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        Assert.Equal(1, leader.AbortsAsked);
    }

    [Fact]
    public async Task A_batch_stays_within_its_size_and_a_larger_command_still_goes_alone()
    {
        var leader = new HeldLeader();
        var queue = QueueFor(leader, batchSizeBytesMax: 1000);
        var blockers = await FillCallSlotsAsync(queue, leader, 10);

        // Four of ~400 bytes (two per call) and one of ~3000 (alone).
        var writes = Enumerable.Range(1, 4).Select(i => (ulong)i).Select(id => queue.SendAsync(CommandOf(id, 400), CancellationToken.None)).ToList();
        writes.Add(queue.SendAsync(CommandOf(5, 3000), CancellationToken.None));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!writes.All(w => w.IsCompleted))
        {
            Assert.True(clock.Elapsed < Deadline, "the writes did not complete");
            leader.ReleaseAll();
            await Task.WhenAny(Task.WhenAll(writes), Task.Delay(20));
        }

        await Task.WhenAll(blockers.Concat(writes)).WaitAsync(Deadline);
        var batches = leader.Calls.Skip(ForwardQueue.CallsInFlightMax).ToList();
        Assert.All(batches, b => Assert.True(b.Commands.Count == 1 || b.Commands.Sum(c => c.CalculateSize()) <= 1000, $"a batch of {b.Commands.Count} commands, {b.Commands.Sum(c => c.CalculateSize())} bytes"));
        Assert.Contains(batches, b => b.Commands.Count == 1 && b.Commands[0].RequestId == 5);
        Assert.Equal(5, batches.Sum(b => b.Commands.Count));
    }
}
