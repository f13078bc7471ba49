using Arbiter.Core;
using Arbiter.Node.Spill;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace Arbiter.Benchmarks;

/// <summary>
/// StateMachine.Apply of a compare-and-swap (compare the key's mod revision, put a new value), the
/// compare.sh txn workload's command, round-robin over 1,000 keys: its compare reads the version
/// the key's previous round wrote. <see cref="Storage"/>: versions on the heap, or paged out to the
/// node's file spill (each compare and overwrite reads the version back and parses it; the spill
/// keeps the bytes it appended last in memory). A compaction every
/// <see cref="PutApplyBenchmarks.CompactEveryPuts"/> rounds bounds history.
/// </summary>
public class CasApplyBenchmarks
{
    private StateMachine _state = null!;
    private ByteString[] _keys = [];
    private long[] _modRevisions = [];
    private ByteString _value = ByteString.Empty;
    private long _index;
    private int _next;
    private string? _spillDirectory;

    /// <summary>Distinct keys written round-robin.</summary>
    [Params(1_000)]
    public int KeyCount { get; set; }

    /// <summary>Where versions live: <c>heap</c> or <c>spill</c>.</summary>
    [Params("heap", "spill")]
    public string Storage { get; set; } = "heap";

    /// <summary>Fresh state with every key present once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _spillDirectory = Storage == "heap" ? null : Directory.CreateTempSubdirectory("arbiter-bench-spill").FullName;
        var spill = _spillDirectory is null ? null : new FileValueSpill(_spillDirectory, NullLogger.Instance);
        _state = new StateMachine(valueSpill: spill);
        _keys = Enumerable.Range(0, KeyCount).Select(Commands.Key).ToArray();
        _modRevisions = new long[KeyCount];
        _value = Commands.Value(256);
        for (var i = 0; i < KeyCount; i++)
        {
            _state.Apply(++_index, Commands.Put(_keys[i], _value));
            _modRevisions[i] = _state.Revision;
        }
    }

    /// <summary>Removes the spill directory.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        if (_spillDirectory is not null)
        {
            Directory.Delete(_spillDirectory, recursive: true);
        }
    }

    /// <summary>One compare-and-swap applied (its compare holds).</summary>
    [Benchmark]
    public ApplyOutcome ApplyCas()
    {
        var slot = _next++ % _keys.Length;
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare
        {
            Key = _keys[slot],
            Target = Compare.Types.CompareTarget.Mod,
            Result = Compare.Types.CompareResult.Equal,
            ModRevision = _modRevisions[slot],
        });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = _keys[slot], Value = _value } });
        var outcome = _state.Apply(++_index, new Command { TimeMs = 1, Txn = txn });
        _modRevisions[slot] = _state.Revision;
        if (_next % PutApplyBenchmarks.CompactEveryPuts == 0)
        {
            _state.Apply(++_index, new Command { TimeMs = 1, Compaction = new CompactionRequest { Revision = _state.Revision } });
        }

        return outcome;
    }
}
