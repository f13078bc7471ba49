using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt.Tests;

/// <summary>
/// The checkers can fail: planted violations (a broken join, a mutator that reuses dots) are
/// caught by the same properties that pass on the real code, and the generated histories really
/// produce the concurrency the properties are about.
/// </summary>
public sealed class CheckerTests(ITestOutputHelper output)
{
    /// <summary>Check stops at the first failing case; a large budget keeps a planted bug from slipping through a run by luck.</summary>
    private const int PlantedCases = 5_000;

    /// <summary>A planted bug: keeps the left side's store (and joins the contexts), so it drops the right side's new elements.</summary>
    private static CrdtState LeftBiasedJoin(CrdtState x, CrdtState y)
    {
        var left = (CausalState)x;
        var right = (CausalState)y;
        return new CausalState(left.Type, left.Store, left.Context.Union(right.Context));
    }

    /// <summary>A planted bug: ignores the causal contexts (keeps every dot of both sides), so a remove never sticks.</summary>
    private static CrdtState ContextBlindJoin(CrdtState x, CrdtState y)
    {
        var left = (CausalState)x;
        var right = (CausalState)y;
        var store = DotStore.Join(left.Store, CausalContext.Empty, right.Store, CausalContext.Empty);
        return new CausalState(left.Type, store, left.Context.Union(right.Context));
    }

    [Fact]
    public void CommutativityCheckCatchesALeftBiasedJoin()
    {
        var failure = Assert.Throws<PropertyFailedException>(() => Property.Check(Simulation.Histories(), steps =>
        {
            var states = Simulation.Run(CrdtType.OrSet, steps, loss: true).States;
            Laws.Hold(LeftBiasedJoin, states[0], states[1], states[2]);
        }, output, cases: PlantedCases));
        output.WriteLine(failure.Message);
        Assert.Contains("not commutative", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConvergenceCheckCatchesAJoinThatIgnoresContexts()
    {
        // The context-blind join is still commutative, associative and idempotent, so only the
        // semantic check (removes stick: the state equals the real join of the deltas) sees it.
        var failure = Assert.Throws<PropertyFailedException>(() => Property.Check(Simulation.Histories(), steps =>
        {
            var simulation = Simulation.Run(CrdtType.OrSet, steps, loss: false);
            var blind = simulation.Deltas.Aggregate(CrdtState.Empty(CrdtType.OrSet), ContextBlindJoin);
            Assert.Equal(simulation.JoinOfDeltas().ToValue(), blind.ToValue());
        }, output, cases: PlantedCases));
        output.WriteLine(failure.Message);
    }

    [Fact]
    public void ExactSumCheckCatchesAMutatorThatReusesDots()
    {
        // A planted bug: the replica forgets its own last dot and mints seq 1 again, as a replica
        // that lost its state and kept its id would; increments are then lost on merge.
        var failure = Assert.Throws<PropertyFailedException>(() => Property.Check(Simulation.Histories(), steps =>
        {
            var states = new[] { CrdtState.Empty(CrdtType.GCounter), CrdtState.Empty(CrdtType.GCounter) };
            long sum = 0;
            foreach (var step in steps.Where(s => s.Kind <= 4))
            {
                int replica = step.Replica % 2;
                long delta = 1 + (step.A % 5);
                var origin = step.B % 3 == 0 ? CrdtState.Empty(CrdtType.GCounter) : states[replica];
                states[replica] = states[replica].Join(CrdtMutator.Apply(origin, Ops.Add(delta), Simulation.Ids[replica], Hlc.Zero, CrdtLimits.Default));
                sum += delta;
            }

            Assert.Equal(sum, states[0].Join(states[1]).ToValue().Counter);
        }, output, cases: PlantedCases));
        output.WriteLine(failure.Message);
    }

    [Fact]
    public void GeneratedHistoriesProduceConcurrency()
    {
        int seed = Property.Seed(output);
        int mvWithSiblings = 0;
        int setsWithRemovals = 0;
        var nestedTypes = new HashSet<CrdtType>();
        var nestedInNested = new HashSet<CrdtType>();
        int contextsWithGaps = 0;
        Property.Check(Simulation.Histories(), steps =>
        {
            var mv = Simulation.Run(CrdtType.MvRegister, steps, loss: true);
            mv.Repair();
            mvWithSiblings += mv.States[0].ToValue().Mv.Siblings.Count > 1 ? 1 : 0;
            contextsWithGaps += mv.States.Concat(mv.Deltas).Any(s => !((CausalState)s).Context.Cloud.IsEmpty) ? 1 : 0;

            var set = Simulation.Run(CrdtType.OrSet, steps, loss: false);
            set.Flush();
            bool removed = set.Deltas.Any(d => ((CausalState)d).Store.IsEmpty && !d.IsEmpty);
            setsWithRemovals += removed && set.States[0].ToValue().Set.Elements.Count > 0 ? 1 : 0;

            var map = Simulation.Run(CrdtType.OrMap, steps, loss: false);
            map.Flush();
            foreach (var entry in map.States[0].ToValue().Map.Entries)
            {
                nestedTypes.Add(entry.Value.Type);
                if (entry.Value.Type == CrdtType.OrMap)
                {
                    nestedInNested.UnionWith(entry.Value.Map.Entries.Select(e => e.Value.Type));
                }
            }
        }, output, seed: seed);
        output.WriteLine($"MV registers left with siblings: {mvWithSiblings}; sets with removals and elements: {setsWithRemovals}; contexts with gaps: {contextsWithGaps}; nested types: {string.Join(",", nestedTypes)}; two deep: {string.Join(",", nestedInNested)}");
        Assert.True(mvWithSiblings > 10, "too few histories leave concurrent MV siblings");
        Assert.True(setsWithRemovals > 10, "too few histories mix adds and removes");
        Assert.True(contextsWithGaps > 10, "too few histories deliver out of order");
        Assert.Equal(7, nestedTypes.Count);
        Assert.Equal(6, nestedInNested.Count);
    }
}
