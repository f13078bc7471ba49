using Arbiter.Crdt;
using Arbiter.Protocol.Crdt;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Arbiter.Benchmarks;

/// <summary>
/// The pure CRDT layer's share of an eventual-tier update (no disk, no network): the delta
/// mutator with its join and size check, a delta joined into a large state, and the encoding.
/// </summary>
public class CrdtBenchmarks
{
    private static readonly ReplicaId Replica = new(1);
    private CrdtState _counter = null!;
    private CrdtState _set = null!;
    private CrdtState _setDelta = null!;
    private byte[] _setBytes = [];
    private CrdtOperation _increment = null!;
    private CrdtOperation _addNew = null!;

    /// <summary>Elements in the set (the default limit is 10,000).</summary>
    [Params(100, 9_000)]
    public int SetElementCount { get; set; }

    /// <summary>A PN counter with three replicas' entries and a set of <see cref="SetElementCount"/> elements.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _increment = new CrdtOperation { CounterAdd = new CounterAdd { Delta = 1 } };
        _counter = CrdtState.Empty(CrdtType.PnCounter);
        for (ulong replica = 1; replica <= 3; replica++)
        {
            _counter = _counter.Join(CrdtMutator.Apply(_counter, _increment, new ReplicaId(replica), Hlc.Zero, CrdtLimits.Default));
        }

        _set = CrdtState.Empty(CrdtType.OrSet);
        for (int start = 0; start < SetElementCount; start += 1_000)
        {
            var add = new SetAdd();
            add.Elements.AddRange(Enumerable.Range(start, Math.Min(1_000, SetElementCount - start)).Select(i => ByteString.CopyFromUtf8($"element-{i:D6}")));
            _set = _set.Join(CrdtMutator.Apply(_set, new CrdtOperation { SetAdd = add }, new ReplicaId(2), Hlc.Zero, CrdtLimits.Default));
        }

        _addNew = new CrdtOperation { SetAdd = new SetAdd { Elements = { ByteString.CopyFromUtf8("new-element") } } };
        _setDelta = CrdtMutator.Apply(_set, _addNew, Replica, Hlc.Zero, CrdtLimits.Default);
        _setBytes = _set.ToBytes();
    }

    /// <summary>One counter increment: delta, join, size check.</summary>
    [Benchmark]
    public CrdtState CounterIncrement() => CrdtMutator.Apply(_counter, _increment, Replica, Hlc.Zero, CrdtLimits.Default, out _);

    /// <summary>One element added to the set: delta, join, size check.</summary>
    [Benchmark]
    public CrdtState SetAdd() => CrdtMutator.Apply(_set, _addNew, Replica, Hlc.Zero, CrdtLimits.Default, out _);

    /// <summary>A peer's one-element delta joined into the set.</summary>
    [Benchmark]
    public CrdtState SetJoinDelta() => _set.Join(_setDelta);

    /// <summary>The set decoded from its bytes and encoded again (recovery, full-state repair).</summary>
    [Benchmark]
    public byte[] SetDecodeEncode() => CrdtState.FromBytes(_setBytes).ToBytes();
}
