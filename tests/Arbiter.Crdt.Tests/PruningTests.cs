using System.Collections.Immutable;
using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt.Tests;

/// <summary>
/// Pruning a departed replica (<see cref="CrdtPruning"/>), as seeded properties over
/// <see cref="PruningSimulation"/> histories for every type: the pruning changes no value; late
/// deltas and old full states from any replica (the departed one's included) neither resurrect
/// nor double-count anything; the survivors converge, counters to the exact sum of every accepted
/// increment, and hold no trace of the departed replica; the join laws hold on pruned and unpruned
/// states mixed; encoding round-trips. A planted naive pruning (no marker) is caught.
/// </summary>
public sealed class PruningTests(ITestOutputHelper output)
{
    public static TheoryData<CrdtType> AllTypes => LatticeTests.AllTypes;

    private static readonly ReplicaId Departed = PruningSimulation.Ids[PruningSimulation.Departed];

    /// <summary>Every check of one case; used by the property and, against a planted bug, by the checker test.</summary>
    private static void CheckPruning(CrdtType type, (Step[] Before, Step[] After, int Pruner) history, PruningSimulation.Pruner prune)
    {
        var simulation = PruningSimulation.Run(type, history, prune);
        var pruned = simulation.BeforePruning.Join(simulation.PruneDelta);

        // The pruning changes no value where it is made.
        Assert.True(WithoutMvContexts(simulation.BeforePruning.ToValue()).Equals(WithoutMvContexts(pruned.ToValue())), $"pruning changed the value:\n before {simulation.BeforePruning}\n after  {pruned}");
        Assert.DoesNotContain(Departed, pruned.Replicas);

        var final = simulation.States[0];
        for (int r = 1; r < 3; r++)
        {
            Assert.True(final.Equals(simulation.States[r]), $"survivors differ:\n {final}\n {simulation.States[r]}");
        }

        // No trace of the departed replica's dots, and nothing late changes anything.
        Assert.DoesNotContain(Departed, final.Replicas);
        foreach (var old in simulation.Old)
        {
            var joined = final.Join(old);
            Assert.True(joined.Equals(final), $"late data changed the converged state:\n final {final}\n late  {old}\n after {joined}");
        }

        if (type is CrdtType.GCounter or CrdtType.PnCounter)
        {
            Assert.Equal(simulation.CounterSum, final.ToValue().Counter);
        }

        // The join laws on pruned and unpruned states mixed.
        Laws.Hold(Laws.Join, final, simulation.DepartedLast, simulation.PruneDelta);
        Laws.Hold(Laws.Join, simulation.Midway, simulation.BeforePruning, simulation.PruneDelta);
        Laws.Hold(Laws.Join, simulation.Old[0], simulation.Midway, final);

        foreach (var state in new[] { final, simulation.Midway, simulation.PruneDelta })
        {
            var bytes = state.ToBytes();
            Assert.Equal(bytes.Length, state.SizeBytes);
            Assert.Equal(state, CrdtState.FromBytes(bytes));
        }
    }

    /// <summary>The value without MV read contexts (they name the siblings' dots, which the pruning renames).</summary>
    private static CrdtValue WithoutMvContexts(CrdtValue value)
    {
        var copy = value.Clone();
        Strip(copy);
        return copy;

        static void Strip(CrdtValue v)
        {
            if (v.Mv is { } mv)
            {
                mv.Context = Google.Protobuf.ByteString.Empty;
            }

            foreach (var entry in v.Map?.Entries ?? [])
            {
                Strip(entry.Value);
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void PruningKeepsValuesAndLateDataNeitherResurrectsNorDoubleCounts(CrdtType type) =>
        Property.Check(PruningSimulation.Cases(), history => CheckPruning(type, history, CrdtPruning.Prune), output, cases: 100);

    /// <summary>
    /// Retirement (docs/crdt.md, "Memory and tombstone behaviour"): once every survivor holds the
    /// pruning, each drops the departed replica's marker at its own time and filters what it
    /// receives from then on. Late data from before the pruning keeps arriving throughout; no
    /// survivor ever holds the departed replica's dots beside the pruning's (counted twice), the survivors converge without any marker or dot of the
    /// departed replica, counters to the exact sum.
    /// </summary>
    private static void CheckRetirement(CrdtType type, (Step[] Before, Step[] After, int Pruner) history, PruningSimulation.Retirement retirement)
    {
        var simulation = PruningSimulation.Run(type, history, CrdtPruning.Prune, retirement);
        Assert.True(simulation.ReplicaAndPruningMet is null, simulation.ReplicaAndPruningMet);
        var final = simulation.States[0];
        for (int r = 1; r < 3; r++)
        {
            Assert.True(final.Equals(simulation.States[r]), $"survivors differ:\n {final}\n {simulation.States[r]}");
        }

        Assert.Empty(final.PrunedReplicas);
        Assert.DoesNotContain(Departed, final.Replicas);
        foreach (var old in simulation.Old)
        {
            // What the node does with anything that arrives after retirement.
            var joined = final.Join(old.Retire([Departed]));
            Assert.True(joined.Equals(final), $"late data changed the retired state:\n final {final}\n late  {old}\n after {joined}");
        }

        if (type is CrdtType.GCounter or CrdtType.PnCounter)
        {
            Assert.Equal(simulation.CounterSum, final.ToValue().Counter);
        }
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void RetiringThePrunedReplicaOnceEverySurvivorHoldsThePruningKeepsLateDataHarmless(CrdtType type) =>
        Property.Check(PruningSimulation.Cases(), history => CheckRetirement(type, history, PruningSimulation.Retirement.Filtered), output, cases: 100);

    /// <summary>Planted bugs: a survivor that joins arrivals without the filter after retiring, or retirement before every survivor holds the pruning; the departed replica's late dots then meet the pruning's.</summary>
    [Theory]
    [InlineData(nameof(PruningSimulation.Retirement.Unfiltered))]
    [InlineData(nameof(PruningSimulation.Retirement.Early))]
    public void TheCheckerCatchesAnUnsafeRetirement(string planted)
    {
        var retirement = Enum.Parse<PruningSimulation.Retirement>(planted);
        // The early retirement shows only in histories where a survivor that retired before holding
        // the pruning later gets both late data and the pruning: over 100 seeds the first failing case was
        // case 1 to 341 (median ~45), so 200 cases missed it about one run in thirty. Check stops at
        // the first failure; 5,000 cases make a miss (~0.984^5000) impossible in practice.
        var failure = Assert.Throws<PropertyFailedException>(() =>
            Property.Check(PruningSimulation.Cases(), history => CheckRetirement(CrdtType.GCounter, history, retirement), output, cases: 5_000));
        output.WriteLine(failure.Message);
    }

    [Fact]
    public void ThePrunedStatesAreSmallerAndRetiringRemovesTheMarker()
    {
        var state = CrdtState.Empty(CrdtType.PnCounter);
        foreach (var replica in PruningSimulation.Ids)
        {
            state = state.Join(CrdtMutator.Apply(state, Ops.Add(5), replica, Hlc.Zero, CrdtLimits.Default));
        }

        var delta = CrdtPruning.Prune(state, Departed, PruningSimulation.Ids[0], out var pruned);
        output.WriteLine($"before {state.SizeBytes} bytes, pruned {pruned.SizeBytes} bytes, delta {delta.SizeBytes} bytes");
        Assert.Equal(20, pruned.ToValue().Counter);
        Assert.True(pruned.SizeBytes < state.SizeBytes);
        Assert.Equal([Departed], pruned.PrunedReplicas);

        var retired = pruned.Retire([Departed]);
        Assert.Empty(retired.PrunedReplicas);
        Assert.DoesNotContain(Departed, retired.Replicas);
        Assert.Equal(20, retired.ToValue().Counter);

        // A second pruning of the same replica is a no-op (a replica already pruned folds nothing twice).
        Assert.True(CrdtPruning.Prune(pruned, Departed, PruningSimulation.Ids[1], out var again).IsEmpty);
        Assert.Equal(pruned, again);

        // The departed replica's late delta, retired on arrival, changes nothing either.
        var late = CrdtMutator.Apply(CrdtState.Empty(CrdtType.PnCounter), Ops.Add(5), Departed, Hlc.Zero, CrdtLimits.Default);
        Assert.Equal(retired, retired.Join(late.Retire([Departed])));
    }

    [Fact]
    public void ThePrunedReplicaCannotUpdateTheKeyAgain()
    {
        var state = CrdtMutator.Apply(CrdtState.Empty(CrdtType.OrSet), Ops.SetAdd("x"), Departed, Hlc.Zero, CrdtLimits.Default);
        CrdtPruning.Prune(state, Departed, PruningSimulation.Ids[0], out var pruned);
        Assert.Equal(["x"], Ops.Elements(pruned));
        var refused = Assert.Throws<CrdtException>(() => CrdtMutator.Apply(pruned, Ops.SetAdd("y"), Departed, Hlc.Zero, CrdtLimits.Default));
        Assert.Contains("pruned", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MalformedPrunedMarkersAreRefused()
    {
        var state = CrdtMutator.Apply(CrdtState.Empty(CrdtType.GCounter), Ops.Add(1), Departed, Hlc.Zero, CrdtLimits.Default);
        var record = Arbiter.Protocol.Internal.CrdtStateRecord.Parser.ParseFrom(state.ToBytes());
        record.PrunedReplicas.Add(Departed.Value);
        var holdsItsDots = Assert.Throws<CrdtException>(() => CrdtState.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(record)));
        Assert.Contains("pruned", holdsItsDots.Message, StringComparison.Ordinal);

        record = Arbiter.Protocol.Internal.CrdtStateRecord.Parser.ParseFrom(state.ToBytes());
        record.PrunedReplicas.Add(9);
        record.PrunedReplicas.Add(8);
        var unsorted = Assert.Throws<CrdtException>(() => CrdtState.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(record)));
        Assert.Contains("ascending", unsorted.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A planted bug: pruning without the marker (collapse the departed replica's dots into the
    /// survivor's and drop them from the pruner's state, as Akka would without PruningPerformed).
    /// The departed replica's dots that other replicas still hold, or that arrive late, count again.
    /// </summary>
    private static CrdtState NaivePrune(CrdtState state, ReplicaId departed, ReplicaId survivor, out CrdtState next)
    {
        var delta = (CausalState)CrdtPruning.Prune(state, departed, survivor, out _);
        var unmarked = new CausalState(delta.Type, delta.Store, delta.Context);
        next = ((CausalState)state.Join(unmarked)).Without(ImmutableSortedSet.Create(departed.Value));
        return unmarked;
    }

    [Theory]
    [InlineData(CrdtType.PnCounter)]
    [InlineData(CrdtType.OrSet)]
    public void TheCheckerCatchesPruningWithoutTheMarker(CrdtType type)
    {
        var failure = Assert.Throws<PropertyFailedException>(() =>
            Property.Check(PruningSimulation.Cases(), history => CheckPruning(type, history, NaivePrune), output, cases: 5_000));
        output.WriteLine(failure.Message);
    }
}
