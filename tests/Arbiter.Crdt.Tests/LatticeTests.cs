using Arbiter.Protocol.Crdt;
using CsCheck;

namespace Arbiter.Crdt.Tests;

/// <summary>
/// Seeded properties over generated histories among three replicas, for every type (and OR-maps
/// nesting every type, two deep): the join laws, deltas against full states, convergence under
/// reordering, duplication and loss then full-state repair, counters to the exact sum.
/// </summary>
public sealed class LatticeTests(ITestOutputHelper output)
{
    public static TheoryData<CrdtType> AllTypes =>
    [
        CrdtType.GCounter, CrdtType.PnCounter, CrdtType.OrSet, CrdtType.LwwRegister,
        CrdtType.MvRegister, CrdtType.OrMap, CrdtType.Flag,
    ];

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void JoinIsCommutativeAssociativeAndIdempotent(CrdtType type) =>
        Property.Check(Simulation.Histories(), steps =>
        {
            var simulation = Simulation.Run(type, steps, loss: true);
            var states = simulation.States;
            Laws.Hold(Laws.Join, states[0], states[1], states[2]);
            if (simulation.Deltas.Count > 0)
            {
                var delta = simulation.Deltas[^1];
                var first = simulation.Deltas[0];
                Laws.Hold(Laws.Join, delta, states[0], first);
                Laws.Hold(Laws.Join, states[2], first, delta);
            }
        }, output);

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void DeltasAloneReachTheJoinOfFullStates(CrdtType type) =>
        Property.Check(Simulation.Histories(), steps =>
        {
            var simulation = Simulation.Run(type, steps, loss: false);
            simulation.Flush();
            var fromDeltas = simulation.JoinOfDeltas();
            Assert.Equal(fromDeltas, simulation.JoinOfStates());
            foreach (var state in simulation.States)
            {
                Assert.Equal(fromDeltas, state);
            }
        }, output);

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void AnyDeliveryOrderDuplicationOrLossThenRepairConverges(CrdtType type) =>
        Property.Check(Gen.Select(Simulation.Histories(), Gen.Int), input =>
        {
            var (steps, shuffleSeed) = input;
            var simulation = Simulation.Run(type, steps, loss: true);
            simulation.Repair();
            var expected = simulation.JoinOfDeltas();
            foreach (var state in simulation.States)
            {
                Assert.Equal(expected, state);
                Assert.Equal(expected.ToBytes(), state.ToBytes());
            }

            // The same deltas joined in another order, each twice, give the same state.
            var shuffled = simulation.Deltas.Concat(simulation.Deltas).ToArray();
            new Random(shuffleSeed).Shuffle(shuffled);
            Assert.Equal(expected, shuffled.Aggregate(CrdtState.Empty(type), (acc, delta) => acc.Join(delta)));

            if (type is CrdtType.GCounter or CrdtType.PnCounter)
            {
                Assert.Equal(simulation.CounterSum, expected.ToValue().Counter);
            }
        }, output);

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void EncodingRoundTripsAndIsDeterministic(CrdtType type) =>
        Property.Check(Simulation.Histories(), steps =>
        {
            var simulation = Simulation.Run(type, steps, loss: true);
            foreach (var state in simulation.States.Concat(simulation.Deltas))
            {
                // The size joins carry over incrementally, taken before anything encodes the state.
                int sizeBytes = state.SizeBytes;
                byte[] bytes = state.ToBytes();
                Assert.Equal(bytes.Length, sizeBytes);
                var decoded = CrdtState.FromBytes(bytes);
                Assert.Equal(state, decoded);
                Assert.Equal(bytes, decoded.ToBytes());
                Assert.Equal(state.ToValue(), decoded.ToValue());
                Assert.Equal(bytes.Length, CrdtState.FromBytes(bytes).SizeBytes);
            }

            // Equal states built along different paths encode to equal bytes.
            var states = simulation.States;
            Assert.Equal(states[0].Join(states[1]).Join(states[2]).ToBytes(), states[2].Join(states[0]).Join(states[1]).ToBytes());
        }, output, cases: 80);

    /// <summary>
    /// Large states (over the 256 dots a join lists instead of scanning) join like small ones:
    /// the full states of three replicas, each with hundreds of adds and removes, join to the same
    /// state as all their deltas joined in a shuffled order, and removes stick.
    /// </summary>
    [Fact]
    public void LargeStatesJoinLikeTheirDeltas()
    {
        int seed = Property.Seed(output);
        var random = new Random(seed);
        var states = new CrdtState[3];
        var deltas = new List<CrdtState>();
        for (int r = 0; r < states.Length; r++)
        {
            states[r] = CrdtState.Empty(CrdtType.OrMap);
            for (int i = 0; i < 400; i++)
            {
                string element = $"e{random.Next(300)}";
                var operation = random.Next(4) == 0
                    ? Ops.Update("set", CrdtType.OrSet, Ops.SetRemove(element))
                    : Ops.Update("set", CrdtType.OrSet, Ops.SetAdd(element));
                var delta = CrdtMutator.Apply(states[r], operation, Simulation.Ids[r], Hlc.Zero, CrdtLimits.Default, out var next);
                Assert.Equal(states[r].Join(delta), next);
                states[r] = next;
                deltas.Add(delta);
            }
        }

        // One replica merges everything, then removes elements it has seen; nobody adds after that.
        var merged = states[0].Join(states[1]).Join(states[2]);
        var finalRemove = CrdtMutator.Apply(merged, Ops.Update("set", CrdtType.OrSet, Ops.SetRemove("e1", "e2", "e3")), Simulation.Ids[0], Hlc.Zero, CrdtLimits.Default, out states[0]);
        deltas.Add(finalRemove);

        var fromStates = states[0].Join(states[1]).Join(states[2]);
        var shuffled = deltas.ToArray();
        random.Shuffle(shuffled);
        var fromDeltas = shuffled.Aggregate(CrdtState.Empty(CrdtType.OrMap), (acc, delta) => acc.Join(delta));
        int fromDeltasSizeBytes = fromDeltas.SizeBytes;
        Assert.Equal(fromDeltas, fromStates);
        Assert.Equal(fromStates, states[2].Join(states[0]).Join(states[1]));
        Assert.Equal(states[1].Join(fromDeltas), fromStates);
        Assert.Equal(fromDeltas.ToBytes().Length, fromDeltasSizeBytes);
        var elements = fromStates.ToValue().Map.Entries.Single().Value.Set.Elements.Select(Ops.S).ToList();
        var before = merged.ToValue().Map.Entries.Single().Value.Set.Elements.Select(Ops.S);
        Assert.Equal(before.Except(["e1", "e2", "e3"]), elements);
        Assert.True(elements.Count > 100);
        output.WriteLine($"{elements.Count} elements, {fromStates.SizeBytes} bytes");
    }

    [Fact]
    public void ArbitraryBytesDecodeToAValidStateOrACrdtException() =>
        Property.Check(Gen.Select(Simulation.Histories(12), Gen.Int[0, 1000], Gen.Byte, Gen.Byte.Array[0, 48]), input =>
        {
            var (steps, position, flip, garbage) = input;
            var simulation = Simulation.Run(CrdtType.OrMap, steps, loss: false);
            byte[] corrupted = simulation.JoinOfStates().ToBytes();
            corrupted[position % corrupted.Length] ^= (byte)(flip | 1);
            foreach (var bytes in new[] { corrupted, garbage })
            {
                try
                {
                    var state = CrdtState.FromBytes(bytes);
                    Assert.Equal(state, CrdtState.FromBytes(state.ToBytes()));
                    _ = state.ToValue();
                }
                catch (CrdtException)
                {
                }
            }
        }, output, cases: 400);
}
