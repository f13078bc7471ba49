using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using BenchmarkDotNet.Attributes;

namespace Arbiter.Benchmarks;

/// <summary>
/// Txn compare evaluation: a read-only txn whose compares all hold (mod_revision == current) and whose
/// branches are empty — the cost of validating and evaluating <see cref="CompareCount"/> compares.
/// </summary>
public class TxnCompareBenchmarks
{
    private StateMachine _state = null!;
    private TxnRequest _txn = null!;

    /// <summary>Compares in the txn, each on its own key.</summary>
    [Params(1, 8)]
    public int CompareCount { get; set; }

    /// <summary>1000 keys; the txn compares the first <see cref="CompareCount"/>.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _state = new StateMachine();
        var value = Commands.Value(256);
        for (var i = 0; i < 1000; i++)
        {
            _state.Apply(i + 1, Commands.Put(Commands.Key(i), value));
        }

        _txn = new TxnRequest();
        for (var i = 0; i < CompareCount; i++)
        {
            _txn.Compare.Add(new Compare
            {
                Key = Commands.Key(i),
                Target = Compare.Types.CompareTarget.Mod,
                Result = Compare.Types.CompareResult.Equal,
                ModRevision = i + 2,
            });
        }

        if (!_state.ReadOnlyTxn(_txn).Succeeded)
        {
            throw new InvalidOperationException("compares were meant to hold");
        }
    }

    /// <summary>Evaluate the compares.</summary>
    [Benchmark]
    public TxnResponse EvaluateCompares() => _state.ReadOnlyTxn(_txn);
}
