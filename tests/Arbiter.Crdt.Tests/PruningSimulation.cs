using System.Collections.Immutable;
using Arbiter.Crdt.Causal;
using Arbiter.Protocol.Crdt;
using CsCheck;

namespace Arbiter.Crdt.Tests;

/// <summary>
/// Four replicas of one key; the fourth departs and one survivor prunes it. Phase one: a history
/// among all four (operations, deliveries in any order with duplication, full-state joins, full
/// states saved to arrive late). Then the departed replica stops, the pruner joins every state (as
/// the node's pruner first exchanges digests with every member) and prunes. Phase two: a history
/// among the three survivors in which everything still in flight from phase one arrives late (the
/// departed replica's deltas, old full states of any replica, the departed replica's last full
/// state) beside the pruning's delta and new operations. Finally everything is delivered and the
/// survivors repair by full states.
/// </summary>
/// <remarks>
/// With retirement on (<see cref="Retirement"/>), phase two also retires the departed replica the
/// node's way: once every survivor holds the pruning (the node's acknowledgement through the Raft
/// log), each survivor at its own time drops the replica's markers and dots from its state and,
/// from then on, from everything it receives, while late data keeps arriving.
/// </remarks>
internal sealed class PruningSimulation
{
    /// <summary>How the survivors retire the departed replica in phase two.</summary>
    public enum Retirement
    {
        /// <summary>They keep the markers.</summary>
        None,

        /// <summary>The node's rule: after every survivor holds the pruning; each filters what it receives from then on.</summary>
        Filtered,

        /// <summary>Planted bug: retired states, but arrivals joined without the filter.</summary>
        Unfiltered,

        /// <summary>Planted bug: retired as soon as the pruner pruned, before the other survivors hold the pruning.</summary>
        Early,
    }

    public const int Departed = 3;

    /// <summary>Survivors as in <see cref="Simulation"/>, plus the departed replica.</summary>
    public static readonly ReplicaId[] Ids = [new(7), new(42), new(1000), new(555)];
    private static readonly long[] SkewsMs = [0, 300, -40, 120];

    private readonly HybridLogicalClock[] _clocks = [.. Enumerable.Range(0, 4).Select(_ => new HybridLogicalClock(1000))];
    private readonly List<(int Target, CrdtState State)> _pool = [];
    private long _timeMs = 1_700_000_000_000;
    private int _live = 4;
    private readonly bool[] _retired = new bool[4];
    private readonly Retirement _retirement;
    private static readonly ImmutableArray<ReplicaId> DepartedOnly = [Ids[Departed]];

    public delegate CrdtState Pruner(CrdtState state, ReplicaId departed, ReplicaId survivor, out CrdtState next);

    private PruningSimulation(CrdtType type, Retirement retirement)
    {
        Type = type;
        _retirement = retirement;
        States = [.. Enumerable.Range(0, 4).Select(_ => CrdtState.Empty(type))];
    }

    public CrdtType Type { get; }

    public CrdtState[] States { get; }

    /// <summary>Everything made before the pruning: every delta and every saved full state, the departed replica's last state included.</summary>
    public List<CrdtState> Old { get; } = [];

    /// <summary>The sum of every counter delta accepted, in both phases.</summary>
    public long CounterSum { get; private set; }

    public int PrunerIndex { get; private set; }

    /// <summary>The pruner's state just before it pruned (it had joined every state).</summary>
    public CrdtState BeforePruning { get; private set; } = null!;

    /// <summary>The departed replica's last full state.</summary>
    public CrdtState DepartedLast { get; private set; } = null!;

    /// <summary>The pruning's delta.</summary>
    public CrdtState PruneDelta { get; private set; } = null!;

    /// <summary>A survivor's state in the middle of phase two (some late data joined, some not).</summary>
    public CrdtState Midway { get; private set; } = null!;

    /// <summary>
    /// A moment at which a survivor held dots of the departed replica beside the dots the pruning
    /// minted from them (its contribution counted twice, if only for a while), or null.
    /// </summary>
    public string? ReplicaAndPruningMet { get; private set; }

    public static Gen<(Step[] Before, Step[] After, int Pruner)> Cases() =>
        Gen.Select(Histories(), Histories(), Gen.Int[0, 2]);

    private static Gen<Step[]> Histories() =>
        Gen.Select(Gen.Int[0, 9], Gen.Int[0, 3], Gen.Int[0, 3], Gen.Int[0, 1000], Gen.Int[0, 1000])
            .Select(t => new Step(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5))
            .Array[1, 40];

    public static PruningSimulation Run(CrdtType type, (Step[] Before, Step[] After, int Pruner) history, Pruner prune, Retirement retirement = Retirement.None)
    {
        var simulation = new PruningSimulation(type, retirement);
        foreach (var step in history.Before)
        {
            simulation.Do(step);
        }

        simulation.Depart(history.Pruner, prune);
        int middle = history.After.Length / 2;
        int acknowledged = history.After.Length / 4;
        for (int i = 0; i < history.After.Length; i++)
        {
            if (i == middle)
            {
                simulation.Midway = simulation.States[0];
            }

            if (retirement != Retirement.None)
            {
                if (i == acknowledged && retirement != Retirement.Early)
                {
                    // Every survivor acknowledges only once it holds the pruning (the node
                    // repairs with the pruner first); retirement is logged after the last one.
                    for (int r = 0; r < 3; r++)
                    {
                        simulation.States[r] = simulation.States[r].Join(simulation.PruneDelta);
                    }
                }

                // Each survivor applies the retirement at its own time (its own log position).
                for (int r = 0; r < 3; r++)
                {
                    if (i == (retirement == Retirement.Early ? 0 : acknowledged) + (r * (history.After.Length - acknowledged) / 3))
                    {
                        simulation.RetireAt(r);
                    }
                }
            }

            simulation.Do(history.After[i]);
        }

        if (retirement != Retirement.None)
        {
            for (int r = 0; r < 3; r++)
            {
                simulation.RetireAt(r);
            }
        }

        simulation.FlushAndRepair();
        return simulation;
    }

    private void RetireAt(int replica)
    {
        if (!_retired[replica])
        {
            _retired[replica] = true;
            States[replica] = States[replica].Retire(DepartedOnly);
            CheckCount(replica);
        }
    }

    /// <summary>What <paramref name="target"/> joins when <paramref name="state"/> arrives: the node's filter once it retired the departed replica.</summary>
    private CrdtState Arriving(int target, CrdtState state) =>
        _retired[target] && _retirement != Retirement.Unfiltered ? state.Retire(DepartedOnly) : state;

    private void Receive(int target, CrdtState state)
    {
        var before = States[target];
        States[target] = States[target].Join(Arriving(target, state));
        CheckCount(target);
        if (ReplicaAndPruningMet is { } met && !met.Contains('\n', StringComparison.Ordinal))
        {
            ReplicaAndPruningMet = $"{met}\n before   {before}\n arriving {state}";
        }
    }

    private void CheckCount(int replica)
    {
        // The departed replica's dots beside the dots the pruning minted from them: counted twice.
        var store = ((CausalState)States[replica]).Store;
        if (ReplicaAndPruningMet is null && PruneDelta is not null
            && store.AllDots().Any(dot => dot.Replica == Ids[Departed].Value)
            && store.AllDots().Intersect(((CausalState)PruneDelta).Store.AllDots()).Any())
        {
            ReplicaAndPruningMet = $"replica {replica} holds the departed replica's dots and the pruning's: {States[replica]}";
        }
    }

    private void Depart(int pruner, Pruner prune)
    {
        PrunerIndex = pruner;
        var departedLast = States[Departed];
        DepartedLast = departedLast;
        Old.Add(departedLast);
        Midway = States[0];

        // The pruner holds everything any replica has (the node's pruner exchanges digests with
        // every member first, and the departed member has been drained).
        var all = States.Aggregate((acc, state) => acc.Join(state));
        States[pruner] = States[pruner].Join(all);
        BeforePruning = States[pruner];
        PruneDelta = prune(States[pruner], Ids[Departed], Ids[pruner], out var next);
        States[pruner] = next;
        _live = 3;
        for (int target = 0; target < 3; target++)
        {
            if (target != pruner)
            {
                _pool.Add((target, PruneDelta));
            }

            _pool.Add((target, departedLast));
        }
    }

    private void FlushAndRepair()
    {
        foreach (var (target, state) in _pool)
        {
            if (target < _live)
            {
                Receive(target, state);
            }
        }

        _pool.Clear();
        var all = States.Take(3).Aggregate((acc, state) => acc.Join(state));
        for (int r = 0; r < 3; r++)
        {
            Receive(r, all);
        }
    }

    private void Do(Step step)
    {
        int replica = step.Replica % _live;
        switch (step.Kind)
        {
            case <= 4:
                Operate(replica, step.A, step.B);
                break;
            case <= 7 when _pool.Count > 0:
                int index = step.A % _pool.Count;
                var (target, state) = _pool[index];
                if (step.B % 4 != 0)
                {
                    _pool.RemoveAt(index);
                }

                if (target < _live)
                {
                    Receive(target, state);
                }

                break;
            case 8:
                Receive(replica, States[step.Other % _live]);
                break;
            case 9:
                _timeMs += step.A;
                _pool.Add((step.B % _live, States[replica]));
                if (_live == 4)
                {
                    Old.Add(States[replica]);
                }

                break;
        }
    }

    private void Operate(int replica, int a, int b)
    {
        var operation = Simulation.OperationFor(Type, a, b, States[replica].ToValue(), mapDepth: 0);
        var stamp = _clocks[replica].Now(_timeMs + SkewsMs[replica]);
        var delta = CrdtMutator.Apply(States[replica], operation, Ids[replica], stamp, CrdtLimits.Default);
        States[replica] = States[replica].Join(delta);
        if (_live == 4)
        {
            Old.Add(delta);
        }

        if (operation.OpCase == CrdtOperation.OpOneofCase.CounterAdd)
        {
            CounterSum += operation.CounterAdd.Delta;
        }

        for (int other = 0; other < _live; other++)
        {
            if (other != replica)
            {
                _pool.Add((other, delta));
            }
        }
    }
}
