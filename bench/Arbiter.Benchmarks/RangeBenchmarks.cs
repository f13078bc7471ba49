using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using BenchmarkDotNet.Attributes;

namespace Arbiter.Benchmarks;

/// <summary>StateMachine.Range over N keys (the core's share of a read; the node adds a read lock).</summary>
public class RangeBenchmarks
{
    private StateMachine _state = null!;
    private RangeRequest _all = null!;
    private RangeRequest _one = null!;

    /// <summary>Keys in the store, all returned by <see cref="RangeAll"/>.</summary>
    [Params(1, 100, 1_000)]
    public int KeyCount { get; set; }

    /// <summary>Store with <see cref="KeyCount"/> keys of 256 bytes, each written twice (two versions).</summary>
    [GlobalSetup]
    public void Setup()
    {
        _state = new StateMachine();
        var value = Commands.Value(256);
        long index = 0;
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < KeyCount; i++)
            {
                _state.Apply(++index, Commands.Put(Commands.Key(i), value));
            }
        }

        _all = new RangeRequest { Key = Commands.Prefix, RangeEnd = Commands.PrefixEnd };
        _one = new RangeRequest { Key = Commands.Key(KeyCount / 2) };
    }

    /// <summary>Every key under the prefix.</summary>
    [Benchmark]
    public RangeResponse RangeAll() => _state.Range(_all);

    /// <summary>One key (what a point read costs at this store size).</summary>
    [Benchmark]
    public RangeResponse RangeOne() => _state.Range(_one);
}
