using Arbiter.Protocol.Crdt;
using CsCheck;

namespace Arbiter.Crdt.Tests;

/// <summary>
/// One step of a generated history among three replicas. Kind 0-4: an operation at
/// <see cref="Replica"/> (chosen from <see cref="A"/> and <see cref="B"/>); 5-7: deliver an
/// in-flight delta (index A), kept in flight to be delivered again when B % 4 == 0 (duplication),
/// dropped instead of delivered when B % 7 == 0 and loss is on; 8: <see cref="Replica"/> joins
/// <see cref="Other"/>'s full state; 9: the physical time advances by A ms.
/// </summary>
public readonly record struct Step(int Kind, int Replica, int Other, int A, int B);

/// <summary>Three replicas of one key, driven by a history of <see cref="Step"/>s.</summary>
internal sealed class Simulation
{
    public const int ReplicaCount = 3;

    /// <summary>Replica ids (not 0-based on purpose) and clock skews: the second replica's clock runs 300 ms ahead.</summary>
    public static readonly ReplicaId[] Ids = [new(7), new(42), new(1000)];
    private static readonly long[] SkewsMs = [0, 300, -40];

    private readonly HybridLogicalClock[] _clocks = [.. Enumerable.Range(0, ReplicaCount).Select(_ => new HybridLogicalClock(1000))];
    private readonly bool _loss;
    private long _timeMs = 1_700_000_000_000;

    private Simulation(CrdtType type, bool loss)
    {
        Type = type;
        _loss = loss;
        States = [.. Enumerable.Range(0, ReplicaCount).Select(_ => CrdtState.Empty(type))];
    }

    public CrdtType Type { get; }

    public CrdtState[] States { get; }

    /// <summary>Every delta made, in order.</summary>
    public List<CrdtState> Deltas { get; } = [];

    public List<(int Target, CrdtState Delta)> InFlight { get; } = [];

    /// <summary>The sum of every accepted counter delta (top-level counters).</summary>
    public long CounterSum { get; private set; }

    public static Gen<Step[]> Histories(int stepsMax = 40) =>
        Gen.Select(Gen.Int[0, 9], Gen.Int[0, ReplicaCount - 1], Gen.Int[0, ReplicaCount - 1], Gen.Int[0, 1000], Gen.Int[0, 1000])
            .Select(t => new Step(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5))
            .Array[1, stepsMax];

    public static Simulation Run(CrdtType type, IEnumerable<Step> steps, bool loss)
    {
        var simulation = new Simulation(type, loss);
        foreach (var step in steps)
        {
            simulation.Do(step);
        }

        return simulation;
    }

    /// <summary>The join of every delta made, from the bottom state.</summary>
    public CrdtState JoinOfDeltas() => Deltas.Aggregate(CrdtState.Empty(Type), (acc, delta) => acc.Join(delta));

    public CrdtState JoinOfStates() => States.Aggregate((acc, state) => acc.Join(state));

    /// <summary>Delivers every delta still in flight, once.</summary>
    public void Flush()
    {
        foreach (var (target, delta) in InFlight)
        {
            States[target] = States[target].Join(delta);
        }

        InFlight.Clear();
    }

    /// <summary>Full-state anti-entropy after losses: each replica joins the others' states.</summary>
    public void Repair()
    {
        var all = JoinOfStates();
        for (int r = 0; r < ReplicaCount; r++)
        {
            States[r] = States[r].Join(all);
        }
    }

    private void Do(Step step)
    {
        switch (step.Kind)
        {
            case <= 4:
                Operate(step.Replica, step.A, step.B);
                break;
            case <= 7 when InFlight.Count > 0:
                int index = step.A % InFlight.Count;
                var (target, delta) = InFlight[index];
                if (step.B % 4 != 0)
                {
                    InFlight.RemoveAt(index);
                }

                if (!(_loss && step.B % 7 == 0))
                {
                    States[target] = States[target].Join(delta);
                }

                break;
            case 8:
                States[step.Replica] = States[step.Replica].Join(States[step.Other]);
                break;
            case 9:
                _timeMs += step.A;
                break;
        }
    }

    private void Operate(int replica, int a, int b)
    {
        var operation = OperationFor(Type, a, b, States[replica].ToValue(), mapDepth: 0);
        var clock = _clocks[replica];
        var stamp = clock.Now(_timeMs + SkewsMs[replica]);
        var delta = CrdtMutator.Apply(States[replica], operation, Ids[replica], stamp, CrdtLimits.Default);
        States[replica] = States[replica].Join(delta);
        Deltas.Add(delta);
        if (operation.OpCase == CrdtOperation.OpOneofCase.CounterAdd)
        {
            CounterSum += operation.CounterAdd.Delta;
        }

        for (int other = 0; other < ReplicaCount; other++)
        {
            if (other != replica)
            {
                InFlight.Add((other, delta));
            }
        }
    }

    private static readonly (string Field, CrdtType Type)[] Fields =
    [
        ("g", CrdtType.GCounter), ("p", CrdtType.PnCounter), ("s", CrdtType.OrSet), ("l", CrdtType.LwwRegister),
        ("m", CrdtType.MvRegister), ("f", CrdtType.Flag), ("n", CrdtType.OrMap),
    ];

    /// <summary>An operation of <paramref name="type"/> chosen by <paramref name="a"/> and <paramref name="b"/>; MV writes use the read's context half the time. Maps nest every type, maps two deep.</summary>
    public static CrdtOperation OperationFor(CrdtType type, int a, int b, CrdtValue? current, int mapDepth)
    {
        string element = ((char)('a' + (a % 5))).ToString();
        switch (type)
        {
            case CrdtType.GCounter:
                return Ops.Add(1 + (a % 10));
            case CrdtType.PnCounter:
                return Ops.Add((a % 21) - 10);
            case CrdtType.OrSet:
                return (b % 3) switch
                {
                    0 => Ops.SetRemove(element),
                    1 => Ops.SetAdd(element),
                    _ => Ops.SetAdd(element, ((char)('a' + (b % 5))).ToString()),
                };
            case CrdtType.LwwRegister:
                return Ops.Assign("v" + (a % 7));
            case CrdtType.MvRegister:
                var context = b % 2 == 0 && current?.Mv is { } mv ? mv.Context : null;
                return Ops.Assign("v" + (a % 7), context);
            case CrdtType.Flag:
                return Ops.Flag(b % 3 != 0);
            case CrdtType.OrMap:
                var (field, fieldType) = Fields[a % (mapDepth >= 1 ? Fields.Length - 1 : Fields.Length)];
                if (b % 5 == 0)
                {
                    return Ops.Remove(field);
                }

                var nested = current?.Map?.Entries.FirstOrDefault(e => Ops.S(e.Field) == field && e.Value.Type == fieldType)?.Value;
                return Ops.Update(field, fieldType, OperationFor(fieldType, a / 7, b / 5, nested, mapDepth + 1));
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }
}
