using Arbiter.Core.Tests.Mvcc;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;
using Xunit.Abstractions;
using static Arbiter.Core.Tests.ReferenceModel;

namespace Arbiter.Core.Tests;

/// <summary>
/// Seeded random workloads checked response-for-response against <see cref="ReferenceModel"/>, with
/// snapshot round-trips at random points, a twin replica that must hash the same, and duplicate
/// request ids. Replay one seed with ARBITER_TEST_SEED=n.
/// </summary>
public class ModelTests(ITestOutputHelper output)
{
    private const int OpsPerSeed = 3000;

    private static readonly string[] KeyPool = ["a", "aa", "ab", "b", "ba", "c", "d", "e\u00ff"];
    private static readonly string[] ValuePool = ["", "x", "y", "z", "xx"];

    public static TheoryData<int> Seeds() => TestSeeds.FromEnvironmentOr(1, 2, 3, 4, 5);

    /// <summary>
    /// The machine under test pages every version out to a spill; its twin keeps them all in memory.
    /// Both must answer as the model does and hash the same, the spill must end up holding every
    /// version, and reads must have gone to it.
    /// </summary>
    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomWorkloadMatchesModel(int seed)
    {
        var spill = new MemoryValueSpill();
        var sm = RunRandomWorkload(seed, spill);
        Assert.True(spill.Appends > 100, $"only {spill.Appends} versions were spilled");
        Assert.True(spill.Reads > 100, $"only {spill.Reads} reads of the spill");
        Assert.Equal(0, sm.CountVersionsInMemory());
    }

    /// <summary>A spill that refuses one append in three (a full disk): the refused versions stay in memory, and nothing else changes.</summary>
    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomWorkloadMatchesModelWhenTheSpillRefusesAppends(int seed)
    {
        var appends = 0;
        var spill = new MemoryValueSpill(() => ++appends % 3 == 0);
        var sm = RunRandomWorkload(seed, spill);
        Assert.True(spill.Refused > 10 && spill.Appends > 10, $"{spill.Appends} appends taken, {spill.Refused} refused");
        Assert.True(sm.CountVersionsInMemory() > 0);
    }

    /// <summary>
    /// A spill whose offsets are too far into their segment for a history entry to keep (from 1
    /// TiB on): every version is paged out through its own small object instead, and nothing else
    /// changes.
    /// </summary>
    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomWorkloadMatchesModelWhenSpillPlacesDoNotFitAnEntry(int seed)
    {
        var spill = new MemoryValueSpill(offsetBase: 1L << 40);
        var sm = RunRandomWorkload(seed, spill);
        Assert.True(spill.Appends > 100 && spill.Reads > 100, $"{spill.Appends} appends, {spill.Reads} reads");
        Assert.Equal(0, sm.CountVersionsInMemory());
    }

    private StateMachine RunRandomWorkload(int seed, MemoryValueSpill spill)
    {
        output.WriteLine($"seed {seed} (replay with ARBITER_TEST_SEED={seed})");
        var rng = new Random(seed);
        var model = new ReferenceModel();
        var sm = new StateMachine(valueSpill: spill);
        var twin = new StateMachine();
        var timeMs = 0L;
        long index = 0;
        ulong nextRequestId = 1;
        var sent = new List<(Command Command, CommandResult Result)>();

        for (var step = 0; step < OpsPerSeed; step++)
        {
            var context = $"seed {seed} step {step}";
            timeMs += rng.Next(0, 1500);
            var roll = rng.Next(100);

            if (roll < 15)
            {
                var request = GenRange(rng, model);
                var expected = model.Range(request, model.Revision);
                object actual;
                try
                {
                    actual = sm.Range(request);
                }
                catch (EtcdException e)
                {
                    actual = e.Error;
                }

                Assert.True(expected.Equals(actual), $"{context}: range {request}\n expected {expected}\n actual {actual}");
                continue;
            }

            if (roll < 18 && sent.Count > 0)
            {
                // A retried proposal: same id, remembered result, no effect.
                var (command, result) = sent[rng.Next(sent.Count)];
                var again = sm.Apply(++index, command.Clone());
                twin.Apply(index, command.Clone());
                Assert.Equal(result, again.Result);
                Assert.Empty(again.Events);
                continue;
            }

            if (roll < 20)
            {
                // Snapshot round-trip: the restored machine must be indistinguishable.
                var hash = sm.Hash();
                using var stream = new MemoryStream();
                sm.WriteSnapshot(stream);
                stream.Position = 0;
                sm = StateMachine.ReadSnapshot(stream, valueSpill: spill);
                sm.VerifyIntegrity();
                Assert.Equal(hash, sm.Hash());
                Assert.Equal(index, sm.AppliedIndex);
                continue;
            }

            if (roll < 23)
            {
                foreach (var id in model.LeaseIds.Append(99))
                {
                    Assert.Equal(model.TimeToLive(id, timeMs), sm.LeaseTimeToLive(new LeaseTimeToLiveRequest { ID = id, Keys = true }, timeMs));
                }

                Assert.Equal(model.LeaseIds, sm.LeaseLeases().Leases.Select(l => l.ID));
                continue;
            }

            var cmd = GenCommand(rng, model);
            cmd.TimeMs = timeMs;
            if (rng.Next(4) == 0)
            {
                cmd.RequestId = nextRequestId++;
            }

            var eventsBefore = model.Events.Count;
            var expectedResult = model.Apply(cmd);
            var outcome = sm.Apply(++index, cmd.Clone());
            var twinOutcome = twin.Apply(index, cmd.Clone());
            Assert.True(expectedResult.Equals(outcome.Result), $"{context}: {cmd}\n expected {expectedResult}\n actual {outcome.Result}");
            Assert.Equal(outcome.Result, twinOutcome.Result);
            Assert.Equal(outcome.Events, twinOutcome.Events);
            Assert.Equal(model.Events.Skip(eventsBefore), outcome.Events);
            Assert.Equal(model.Revision, sm.Revision);
            if (cmd.RequestId != 0)
            {
                sent.Add((cmd, outcome.Result));
            }

            if (step % 100 == 0)
            {
                Assert.Equal(twin.Hash(), sm.Hash());
                sm.VerifyIntegrity();
                twin.VerifyIntegrity();
            }
        }

        Assert.Equal(twin.Hash(), sm.Hash());
        Assert.Equal(twin.HashKv(0), sm.HashKv(0));
        var from = Math.Max(1, sm.CompactRevision);
        var history = sm.ReadEvents(from, int.MaxValue);
        Assert.Equal(model.Events.Where(e => e.Kv.ModRevision >= from), history.Events);
        Assert.Equal(sm.Revision + 1, history.NextRevision);
        output.WriteLine($"revision {sm.Revision}, compacted at {sm.CompactRevision}, {model.Events.Count} events, size {sm.SizeBytes} bytes, {spill.Appends} versions spilled, {spill.Refused} refused");
        return sm;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void PagedEventReadsCoverTheHistoryExactly(int seed)
    {
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var model = new ReferenceModel();
        var sm = new StateMachine();
        long index = 0;
        for (var step = 0; step < 500; step++)
        {
            var cmd = GenCommand(rng, model);
            if (cmd.OpCase == Command.OpOneofCase.Compaction)
            {
                continue;
            }

            model.Apply(cmd);
            sm.Apply(++index, cmd);
        }

        var events = new List<Event>();
        var next = 1L;
        while (next <= sm.Revision)
        {
            var slice = sm.ReadEvents(next, rng.Next(1, 5));
            Assert.True(slice.NextRevision > next);
            events.AddRange(slice.Events);
            next = slice.NextRevision;
        }

        Assert.Equal(model.Events, events);
    }

    private static ByteString Key(Random rng) => Bytes(KeyPool[rng.Next(KeyPool.Length)]);

    private static ByteString Value(Random rng) => Bytes(ValuePool[rng.Next(ValuePool.Length)]);

    private static (ByteString Key, ByteString End) GenInterval(Random rng)
    {
        return rng.Next(5) switch
        {
            0 => (Key(rng), ByteString.Empty),
            1 => (Key(rng), Bytes("\0")),
            2 => (Bytes("\0"), Bytes("\0")),
            3 => (Bytes("a"), Bytes("b")),
            _ => (Key(rng), Key(rng)),
        };
    }

    private static long RandomRevision(Random rng, ReferenceModel model) =>
        rng.Next(3) == 0 ? 0 : rng.NextInt64(Math.Max(0, model.CompactMainRev - 1), model.Revision + 2);

    private static RangeRequest GenRange(Random rng, ReferenceModel model, bool inTxn = false)
    {
        var (key, end) = GenInterval(rng);
        var r = new RangeRequest
        {
            Key = key,
            RangeEnd = end,
            Limit = rng.Next(3) == 0 ? rng.Next(0, 4) : 0,
            Revision = inTxn ? (rng.Next(4) == 0 ? RandomRevision(rng, model) : 0) : RandomRevision(rng, model),
            SortOrder = (RangeRequest.Types.SortOrder)rng.Next(3),
            SortTarget = (RangeRequest.Types.SortTarget)rng.Next(5),
            KeysOnly = rng.Next(6) == 0,
            CountOnly = rng.Next(8) == 0,
        };
        if (rng.Next(4) == 0)
        {
            r.MinModRevision = rng.Next(0, (int)model.Revision + 1);
            r.MaxCreateRevision = rng.Next(0, (int)model.Revision + 1);
        }

        if (rng.Next(6) == 0)
        {
            r.MaxModRevision = rng.Next(0, (int)model.Revision + 1);
            r.MinCreateRevision = rng.Next(0, (int)model.Revision + 1);
        }

        return r;
    }

    private static long RandomLease(Random rng, ReferenceModel model)
    {
        var ids = model.LeaseIds.ToList();
        return rng.Next(3) switch
        {
            0 => 0,
            1 when ids.Count > 0 => ids[rng.Next(ids.Count)],
            _ => rng.Next(1, 6),
        };
    }

    private static Command GenCommand(Random rng, ReferenceModel model)
    {
        var roll = rng.Next(100);
        if (roll < 35)
        {
            return new Command
            {
                Put = new PutRequest
                {
                    Key = Key(rng),
                    Value = Value(rng),
                    Lease = RandomLease(rng, model),
                    PrevKv = rng.Next(2) == 0,
                },
            };
        }

        if (roll < 40)
        {
            var p = new PutRequest { Key = Key(rng), PrevKv = rng.Next(2) == 0 };
            if (rng.Next(2) == 0)
            {
                p.IgnoreValue = true;
            }
            else
            {
                p.IgnoreLease = true;
                p.Value = Value(rng);
            }

            return new Command { Put = p };
        }

        if (roll < 50)
        {
            var (key, end) = GenInterval(rng);
            return new Command { DeleteRange = new DeleteRangeRequest { Key = key, RangeEnd = end, PrevKv = rng.Next(2) == 0 } };
        }

        if (roll < 75)
        {
            var puts = new HashSet<string>();
            var txn = GenTxn(rng, model, depth: 0, puts);
            DropDeletesCoveringPuts(txn, puts);
            return new Command { Txn = txn };
        }

        if (roll < 79)
        {
            return new Command { Compaction = new CompactionRequest { Revision = rng.NextInt64(Math.Max(0, model.CompactMainRev - 1), model.Revision + 2) } };
        }

        if (roll < 86)
        {
            return new Command { LeaseGrant = new LeaseGrantRequest { ID = rng.Next(1, 6), TTL = rng.Next(-1, 8) } };
        }

        if (roll < 89)
        {
            return new Command { LeaseRevoke = new LeaseRevokeRequest { ID = rng.Next(1, 7) } };
        }

        if (roll < 95)
        {
            return new Command { LeaseKeepAlive = new LeaseKeepAliveRequest { ID = rng.Next(1, 7) } };
        }

        if (roll < 99)
        {
            return new Command { LeaseExpire = new LeaseExpire { LeasesMax = rng.Next(0, 3) } };
        }

        return new Command { LeasePromote = new LeasePromote() };
    }

    /// <summary>A valid txn: put keys never repeat across the whole txn and never fall inside a delete.</summary>
    private static TxnRequest GenTxn(Random rng, ReferenceModel model, int depth, HashSet<string> usedPuts)
    {
        var t = new TxnRequest();
        for (var i = rng.Next(0, 3); i > 0; i--)
        {
            var (key, end) = rng.Next(3) == 0 ? GenInterval(rng) : (Key(rng), ByteString.Empty);
            var c = new Compare
            {
                Key = key,
                RangeEnd = end,
                Result = (Compare.Types.CompareResult)rng.Next(4),
                Target = (Compare.Types.CompareTarget)rng.Next(5),
            };
            switch (rng.Next(5))
            {
                case 0: c.Version = rng.Next(0, 4); break;
                case 1: c.CreateRevision = rng.Next(0, (int)model.Revision + 2); break;
                case 2: c.ModRevision = rng.Next(0, (int)model.Revision + 2); break;
                case 3: c.Value = Value(rng); break;
                default: c.Lease = rng.Next(0, 6); break;
            }

            // Mostly make the union match the target, sometimes leave the mismatch in.
            if (rng.Next(4) != 0)
            {
                c.Target = c.TargetUnionCase switch
                {
                    Compare.TargetUnionOneofCase.Version => Compare.Types.CompareTarget.Version,
                    Compare.TargetUnionOneofCase.CreateRevision => Compare.Types.CompareTarget.Create,
                    Compare.TargetUnionOneofCase.ModRevision => Compare.Types.CompareTarget.Mod,
                    Compare.TargetUnionOneofCase.Value => Compare.Types.CompareTarget.Value,
                    _ => Compare.Types.CompareTarget.Lease,
                };
            }

            t.Compare.Add(c);
        }

        GenBranch(rng, model, depth, usedPuts, t.Success);
        GenBranch(rng, model, depth, usedPuts, t.Failure);
        return t;
    }

    private static void GenBranch(Random rng, ReferenceModel model, int depth, HashSet<string> usedPuts, Google.Protobuf.Collections.RepeatedField<RequestOp> ops)
    {
        // Puts first (keys reserved), then deletes that avoid every put key, then ranges and nesting.
        var count = rng.Next(0, 4);
        for (var i = 0; i < count; i++)
        {
            switch (rng.Next(depth == 0 ? 5 : 4))
            {
                case 0:
                case 1:
                    var key = KeyPool[rng.Next(KeyPool.Length)];
                    if (usedPuts.Add(key))
                    {
                        ops.Add(new RequestOp { RequestPut = new PutRequest { Key = Bytes(key), Value = Value(rng), Lease = RandomLease(rng, model), PrevKv = rng.Next(2) == 0 } });
                    }

                    break;
                case 2:
                    var (start, end) = GenInterval(rng);
                    if (!start.Equals(Bytes("\0")) && !end.Equals(Bytes("\0")))
                    {
                        ops.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = start, RangeEnd = end, PrevKv = rng.Next(2) == 0 } });
                    }

                    break;
                case 3:
                    ops.Add(new RequestOp { RequestRange = GenRange(rng, model, inTxn: true) });
                    break;
                default:
                    ops.Add(new RequestOp { RequestTxn = GenTxn(rng, model, depth + 1, usedPuts) });
                    break;
            }
        }
    }

    /// <summary>Drops, at every level, deletes covering any put of the whole txn (etcd refuses those as duplicates).</summary>
    private static void DropDeletesCoveringPuts(TxnRequest t, HashSet<string> puts)
    {
        foreach (var ops in new[] { t.Success, t.Failure })
        {
            for (var i = ops.Count - 1; i >= 0; i--)
            {
                if (ops[i].RequestCase == RequestOp.RequestOneofCase.RequestTxn)
                {
                    DropDeletesCoveringPuts(ops[i].RequestTxn, puts);
                }
                else if (ops[i].RequestCase == RequestOp.RequestOneofCase.RequestDeleteRange)
                {
                    var d = ops[i].RequestDeleteRange;
                    var s = K(d.Key);
                    var e = K(d.RangeEnd);
                    if (puts.Any(k => e.Length == 0 ? k == s : string.CompareOrdinal(k, s) >= 0 && string.CompareOrdinal(k, e) < 0))
                    {
                        ops.RemoveAt(i);
                    }
                }
            }
        }
    }
}
