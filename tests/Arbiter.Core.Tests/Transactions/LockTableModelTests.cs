using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Transactions;
using Google.Protobuf;
using Xunit.Abstractions;
using static Arbiter.Core.Tests.Harness;
using Kind = Arbiter.Protocol.Transactions.TransactionError.Types.Kind;

namespace Arbiter.Core.Tests.Transactions;

/// <summary>
/// Seeded random begin/lock/commit/abort/expire/timeout sequences, checked command by command
/// against <see cref="LockModel"/> (the rules written the plain way, over integer key positions),
/// with the invariants: no two conflicting grants, FIFO (no waiter grantable, grants exactly where
/// the model grants), no lost waiter (every queued caller learns its outcome), every cycle broken,
/// identical state hash on a twin replica fed the same commands, snapshot round-trips at random
/// points. Replay one seed with ARBITER_TEST_SEED=n.
/// </summary>
public class LockTableModelTests(ITestOutputHelper output)
{
    private const int StepsPerSeed = 1500;
    private const int KeyPositions = 8;

    public static TheoryData<int> Seeds() => TestSeeds.FromEnvironmentOr(1, 2, 3, 4, 5, 6);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomSequencesMatchTheModel(int seed)
    {
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        var rng = new Random(seed);
        var model = new LockModel();
        var sm = new StateMachine();
        var twin = new StateMachine();
        long index = 0;
        var timeMs = 1_000L;
        var leases = new List<long>();
        var callers = new List<(long Txn, long Seq)>();
        var lastToken = 0L;

        CommandResult Apply(Command command)
        {
            command.TimeMs = timeMs;
            index++;
            var result = sm.Apply(index, command.Clone()).Result;
            var twinResult = twin.Apply(index, command).Result;
            Assert.Equal(result, twinResult);
            return result;
        }

        var continuations = new List<(long Txn, List<Target> Remaining)>();
        var (multiTarget, queuedMidRequest, restsTaken) = (0, 0, 0);
        var pendingRest = new Dictionary<(long Txn, long Seq), List<Target>>();

        // One to three targets (mostly one), each a key or a range, S or X.
        List<Target> RandomTargets()
        {
            var count = rng.Next(3) == 0 ? rng.Next(2, 4) : 1;
            var targets = new List<Target>(count);
            for (var i = 0; i < count; i++)
            {
                var lo = rng.Next(KeyPositions);
                var hi = rng.Next(4) == 0 ? rng.Next(lo + 1, KeyPositions + 1) : lo + 1;
                var single = hi == lo + 1 && rng.Next(2) == 0;
                var exclusive = rng.Next(2) == 0;
                var proto = new LockTarget { Key = B($"k{lo}"), RangeEnd = single ? ByteString.Empty : B($"k{hi}"), Mode = exclusive ? LockMode.Exclusive : LockMode.Shared };
                targets.Add(new Target(proto, single ? (2 * lo, (2 * lo) + 1, exclusive) : (2 * lo, 2 * hi, exclusive)));
            }

            return targets;
        }

        void CheckLock(string context, long txn, List<Target> targets, bool nowait, long timeout)
        {
            var request = new LockRequest
            {
                TxnId = txn,
                Key = targets[0].Proto.Key,
                RangeEnd = targets[0].Proto.RangeEnd,
                Mode = targets[0].Proto.Mode,
                WaitPolicy = nowait ? WaitPolicy.Nowait : WaitPolicy.Block,
                WaitTimeoutMs = timeout,
            };
            request.More.AddRange(targets.Skip(1).Select(t => t.Proto));
            multiTarget += targets.Count > 1 ? 1 : 0;
            var result = Apply(new Command { TxnLock = request });
            var expected = model.Lock(txn, [.. targets.Select(t => t.Model)], nowait, timeout == 0 ? new CoreLimits().LockWaitTimeoutMsDefault : timeout, timeMs);
            if (expected.Outcome is LockModel.Outcome.Granted or LockModel.Outcome.Waiting)
            {
                Assert.True(result.ResultCase == CommandResult.ResultOneofCase.TxnLock, $"{context}: expected {expected.Outcome}, got {result}");
                CheckLockResult(context, txn, targets, expected.Outcome, expected.Seq, expected.Granted, result.TxnLock);
            }
            else
            {
                Assert.True(result.ResultCase == CommandResult.ResultOneofCase.Error, $"{context}: expected {expected.Outcome}, got {result}");
                Assert.Equal(expected.Kind, result.Error.Transaction?.Kind ?? Kind.Unspecified);
            }
        }

        void CheckLockResult(string context, long txn, List<Target> targets, LockModel.Outcome outcome, long seq, int granted, LockResult actual)
        {
            if (outcome == LockModel.Outcome.Granted)
            {
                Assert.True(actual.Granted, $"{context}: expected every target granted, got {actual}");
                Assert.Equal(targets.Count, actual.FencingTokens.Count);
                Assert.All(actual.FencingTokens, t => Assert.True(t > 0));
                return;
            }

            Assert.False(actual.Granted, $"{context}: expected to queue, got {actual}");
            Assert.Equal(seq, actual.Sequence);
            Assert.True(granted == actual.FencingTokens.Count, $"{context}: expected {granted} targets granted before the queued one, got {actual}");
            callers.Add((txn, seq));
            queuedMidRequest += granted > 0 ? 1 : 0;
            if (granted + 1 < targets.Count)
            {
                pendingRest[(txn, seq)] = targets[(granted + 1)..];
            }
        }

        for (var step = 0; step < StepsPerSeed; step++)
        {
            var context = $"seed {seed} step {step}";
            timeMs += rng.Next(0, 80);
            var roll = rng.Next(100);
            var open = model.OpenTxns();

            if (roll < 6 || leases.Count == 0)
            {
                var ttl = rng.Next(2, 30);
                var grant = Ok(Apply(new Command { LeaseGrant = new Arbiter.Protocol.Etcd.LeaseGrantRequest { TTL = ttl, ID = 1000 + step } })).LeaseGrant;
                leases.Add(grant.ID);
                model.Leases[grant.ID] = timeMs + (ttl * 1000);
            }
            else if (roll < 20 || open.Count < 3)
            {
                var lease = leases[rng.Next(leases.Count)];
                var limitMs = rng.Next(3) == 0 ? rng.Next(500, 4000) : 0;
                var request = new BeginRequest { Lease = lease, TimeLimitMs = limitMs };
                var limitOrDefault = limitMs == 0 ? new CoreLimits().TransactionTimeLimitMsDefault : limitMs;
                if (rng.Next(3) == 0)
                {
                    // Begin carrying locks: the transaction and its locks in one command.
                    var targets = RandomTargets();
                    var nowait = rng.Next(8) == 0;
                    var timeout = rng.Next(3) == 0 ? rng.Next(200, 3000) : 0;
                    request.Locks.AddRange(targets.Select(t => t.Proto));
                    request.LockWaitPolicy = nowait ? WaitPolicy.Nowait : WaitPolicy.Block;
                    request.LockWaitTimeoutMs = timeout;
                    var result = Apply(new Command { TxnBegin = request });
                    var expected = model.BeginLocked(lease, limitOrDefault, timeMs, [.. targets.Select(t => t.Model)], nowait, timeout == 0 ? new CoreLimits().LockWaitTimeoutMsDefault : timeout);
                    if (expected.Txn is { } id && expected.Outcome is LockModel.Outcome.Granted or LockModel.Outcome.Waiting)
                    {
                        Assert.True(result.ResultCase == CommandResult.ResultOneofCase.TxnBeginLocked, $"{context}: begin with locks failed: {result}");
                        Assert.Equal(id, result.TxnBeginLocked.Begin.TxnId);
                        CheckLockResult(context, id, targets, expected.Outcome, expected.Seq, expected.Granted, result.TxnBeginLocked.Lock);
                        Assert.Equal(expected.Outcome == LockModel.Outcome.Granted ? targets.Count : 0, result.TxnBeginLocked.Begin.FencingTokens.Count);
                    }
                    else
                    {
                        Assert.True(result.ResultCase == CommandResult.ResultOneofCase.Error, $"{context}: expected {expected.Outcome}, got {result}");
                        Assert.Equal(expected.Kind, result.Error.Transaction?.Kind ?? Kind.Unspecified);
                    }
                }
                else
                {
                    var result = Apply(new Command { TxnBegin = request });
                    var expected = model.Begin(lease, limitOrDefault, timeMs);
                    if (expected is { } id)
                    {
                        Assert.True(result.ResultCase == CommandResult.ResultOneofCase.TxnBegin, $"{context}: begin failed: {result}");
                        Assert.Equal(id, result.TxnBegin.TxnId);
                    }
                    else
                    {
                        Assert.Equal(CommandResult.ResultOneofCase.Error, result.ResultCase);
                    }
                }
            }
            else if (roll < 25 && continuations.Count > 0)
            {
                // A caller whose queued target was granted asks for the rest (as the node does).
                var (txn, rest) = continuations[rng.Next(continuations.Count)];
                continuations.Remove((txn, rest));
                restsTaken++;
                CheckLock(context, txn, rest, nowait: false, timeout: 0);
            }
            else if (roll < 65 && open.Count > 0)
            {
                var txn = open[rng.Next(open.Count)];
                var nowait = rng.Next(8) == 0;
                var timeout = rng.Next(3) == 0 ? rng.Next(200, 3000) : 0;
                CheckLock(context, txn, RandomTargets(), nowait, timeout);
            }
            else if (roll < 78 && open.Count > 0)
            {
                var txn = open[rng.Next(open.Count)];
                var held = model.ExclusiveKeys(txn);
                var writes = new List<Arbiter.Protocol.Etcd.RequestOp>();
                if (held.Count > 0 && rng.Next(2) == 0)
                {
                    writes.Add(OpPut($"k{held[rng.Next(held.Count)]}", $"v{step}"));
                }
                else if (rng.Next(6) == 0)
                {
                    writes.Add(OpPut($"k{rng.Next(KeyPositions)}", "unlocked?"));
                }

                var request = new CommitRequest { TxnId = txn };
                request.Writes.AddRange(writes);
                var result = Apply(new Command { TxnCommit = request });
                var expectedOk = model.Commit(txn, writes.Select(w => w.RequestPut.Key.ToStringUtf8()[1] - '0').ToList(), timeMs);
                Assert.True(expectedOk == (result.ResultCase == CommandResult.ResultOneofCase.TxnCommit), $"{context}: commit expected ok={expectedOk}, got {result}");
            }
            else if (roll < 85 && open.Count > 0)
            {
                var txn = open[rng.Next(open.Count)];
                Ok(Apply(new Command { TxnAbort = new AbortRequest { TxnId = txn } }));
                model.Abort(txn, timeMs);
            }
            else if (roll < 92)
            {
                Ok(Apply(new Command { TxnTimers = new TxnTimers() }));
                model.Timers(timeMs);
            }
            else if (roll < 97)
            {
                Ok(Apply(new Command { LeaseExpire = new LeaseExpire() }));
                model.ExpireLeases(timeMs);
                leases.RemoveAll(l => !model.Leases.ContainsKey(l));
            }
            else
            {
                // Snapshot round-trip: the restored machine replaces the live one and must be indistinguishable.
                var hash = sm.Hash();
                using var stream = new MemoryStream();
                sm.WriteSnapshot(stream);
                stream.Position = 0;
                sm = StateMachine.ReadSnapshot(stream);
                Assert.Equal(hash, sm.Hash());
            }

            // ---- Invariants after every step ----
            sm.VerifyIntegrity();   // no conflicting grants, no grantable waiter, no cycle, one wait per txn
            Assert.True(sm.Hash() == twin.Hash(), $"{context}: replicas diverged");
            var status = sm.TransactionStatus();
            var actualLocks = status.Locks.Select(l => (l.Sequence, l.TxnId, l.Granted)).ToList();
            var expectedLocks = model.Requests.Select(r => (r.Seq, r.Txn, r.Granted)).ToList();
            Assert.True(expectedLocks.SequenceEqual(actualLocks), $"{context}: lock table differs from the model\n expected {string.Join(" ", expectedLocks)}\n actual   {string.Join(" ", actualLocks)}");
            Assert.Equal(model.OpenTxns(), status.Transactions.Select(t => t.TxnId).ToList());
            foreach (var l in status.Locks.Where(l => l.Granted))
            {
                Assert.True(l.FencingToken > 0);
            }

            var maxToken = status.Locks.Select(l => l.FencingToken).DefaultIfEmpty(0).Max();
            Assert.True(maxToken == 0 || maxToken >= lastToken || status.Locks.All(l => l.FencingToken < lastToken), $"{context}: token went backwards");
            lastToken = Math.Max(lastToken, maxToken);

            // No lost waiter: every caller still queued learns exactly what the model says.
            foreach (var (txn, seq) in callers.ToList())
            {
                var fate = model.Fate(txn, seq);
                try
                {
                    var state = sm.LockWaitState(txn, seq);
                    Assert.True(fate == (state is null ? Kind.Unspecified : (Kind)(-1)), $"{context}: caller {txn}/{seq} expected {fate}, state {state}");
                }
                catch (EtcdException e)
                {
                    Assert.True(fate == e.Error.Transaction!.Kind, $"{context}: caller {txn}/{seq} expected {fate}, got {e.Error.Message}");
                }

                if (fate != Kind.Unspecified)
                {
                    callers.Remove((txn, seq));
                    if (pendingRest.Remove((txn, seq), out var rest) && fate == (Kind)(-1))
                    {
                        continuations.Add((txn, rest));
                    }
                }
            }
        }

        output.WriteLine($"deadlocks broken: {sm.TransactionStatus().Counters.Deadlocks}, grants: {sm.TransactionStatus().Counters.Grants}, lock timeouts: {sm.TransactionStatus().Counters.LockTimeouts}, multi-target requests: {multiTarget}, queued mid-request: {queuedMidRequest}, rests taken: {restsTaken}");
        Assert.True(multiTarget > 0 && queuedMidRequest > 0 && restsTaken > 0, "the workload exercised too little of multi-target locking");
        Assert.True(sm.TransactionStatus().Counters.Deadlocks > 0, "the workload produced no deadlock: it tests nothing about cycles");
    }

    /// <summary>A lock target as sent and as the model sees it (positions: key i is [2i, 2i+1)).</summary>
    private sealed record Target(LockTarget Proto, (int Lo, int Hi, bool Exclusive) Model);

    /// <summary>Planted violations: the invariant checker used above must catch each.</summary>
    [Theory]
    [InlineData("conflicting grants", "two conflicting grants")]
    [InlineData("grantable waiter", "a waiting request that could be granted")]
    [InlineData("cycle", "a wait-for cycle survived")]
    [InlineData("two waits", "a transaction waits for two locks")]
    public void TheCheckerCatchesPlantedViolations(string plant, string expected)
    {
        var image = new TransactionTableImage { LastTxnId = 3, LastSequence = 10, LastFencingToken = 10, Counters = new TransactionCounters() };
        foreach (var id in new long[] { 1, 2, 3 })
        {
            image.Transactions.Add(new TransactionRecord { TxnId = id, Age = id, Lease = 1, TimeLimitMs = 1000, DeadlineMs = 1000 });
        }

        LockEntry E(long seq, long txn, string key, bool granted) => new()
        {
            Sequence = seq,
            TxnId = txn,
            Key = B(key),
            Mode = LockMode.Exclusive,
            Granted = granted,
            FencingToken = granted ? seq : 0,
            WaitDeadlineMs = granted ? 0 : 1000,
        };

        switch (plant)
        {
            case "conflicting grants":
                image.Entries.Add(E(1, 1, "a", true));
                image.Entries.Add(E(2, 2, "a", true));
                break;
            case "grantable waiter":
                image.Entries.Add(E(1, 1, "a", true));
                image.Entries.Add(E(2, 2, "b", false));
                break;
            case "cycle":
                image.Entries.Add(E(1, 1, "a", true));
                image.Entries.Add(E(2, 2, "b", true));
                image.Entries.Add(E(3, 1, "b", false));
                image.Entries.Add(E(4, 2, "a", false));
                break;
            default:
                image.Entries.Add(E(1, 1, "a", true));
                image.Entries.Add(E(2, 2, "a", false));
                image.Entries.Add(E(3, 2, "a", false));
                break;
        }

        var table = new Arbiter.Core.Transactions.LockTable(new CoreLimits(), () => 1);
        table.Restore(image);
        var e = Assert.Throws<InvalidOperationException>(table.Verify);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
