using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;

namespace Arbiter.Benchmarks;

/// <summary>
/// StateMachine.Apply of a Put: the core's share of every write (validation, MVCC index and history,
/// event, result). A compaction every <see cref="CompactEveryPuts"/> puts keeps history bounded, as
/// a long-running server would; its cost is amortized into the figure.
/// </summary>
public class PutApplyBenchmarks
{
    /// <summary>Puts between compactions.</summary>
    public const int CompactEveryPuts = 4096;

    private StateMachine _state = null!;
    private ByteString[] _keys = [];
    private ByteString _value = ByteString.Empty;
    private long _index;
    private int _next;

    /// <summary>Distinct keys written round-robin.</summary>
    [Params(1_000)]
    public int KeyCount { get; set; }

    /// <summary>Value size.</summary>
    [Params(256)]
    public int ValueSizeBytes { get; set; }

    /// <summary>Fresh state with every key present once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _state = new StateMachine();
        _keys = Enumerable.Range(0, KeyCount).Select(Commands.Key).ToArray();
        _value = Commands.Value(ValueSizeBytes);
        foreach (var key in _keys)
        {
            _state.Apply(++_index, Commands.Put(key, _value));
        }
    }

    /// <summary>One Put command applied.</summary>
    [Benchmark]
    public ApplyOutcome ApplyPut()
    {
        var outcome = _state.Apply(++_index, Commands.Put(_keys[_next++ % _keys.Length], _value));
        if (_next % CompactEveryPuts == 0)
        {
            _state.Apply(++_index, new Command { TimeMs = 1, Compaction = new CompactionRequest { Revision = _state.Revision } });
        }

        return outcome;
    }
}
