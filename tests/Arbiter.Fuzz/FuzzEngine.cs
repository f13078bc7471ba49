using System.Diagnostics;
using System.Globalization;

namespace Arbiter.Fuzz;

/// <summary>What one fuzz run found.</summary>
/// <param name="Kind">crash (an exception), hang (over the per-input time bound) or allocation (over the per-input allocation bound).</param>
/// <param name="Input">The input that failed.</param>
/// <param name="Message">What went wrong.</param>
public sealed record FuzzFailure(string Kind, byte[] Input, string Message);

/// <summary>The figures of one fuzz run of one target.</summary>
public sealed record FuzzReport(
    string Target,
    int Seed,
    long Inputs,
    TimeSpan Elapsed,
    long AllocatedBytesMax,
    int AllocatedBytesMaxInputLength,
    double InputMsMax,
    int CorpusStart,
    int CorpusEnd,
    int Outcomes,
    FuzzFailure? Failure)
{
    /// <summary>One line with every figure.</summary>
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Target}: seed {Seed}, {Inputs:N0} inputs in {Elapsed.TotalSeconds:F1}s ({Inputs / Math.Max(Elapsed.TotalSeconds, 1e-9):N0}/s), max alloc {AllocatedBytesMax:N0} B per input (input of {AllocatedBytesMaxInputLength} B), max {InputMsMax:F1} ms per input, corpus {CorpusStart}->{CorpusEnd}, {Outcomes} outcomes; {(Failure is null ? "no failure" : $"FAILURE {Failure.Kind}: {Failure.Message}")}");
}

/// <summary>
/// An in-process, seeded, corpus-driven mutation fuzzer. Each input is a corpus entry with one to
/// four stacked mutations (bit flips, byte sets, truncation, insertion, deletion, duplication,
/// splicing with another entry, protobuf varint edits, length-field edits). An input whose outcome
/// signature is new joins the corpus. Every input is bounded in time (a watchdog) and in the bytes it
/// allocates (<see cref="FuzzTarget.AllocationBytesMax"/>). The same seed, corpus and target replay
/// the same inputs.
/// </summary>
public static class FuzzEngine
{
    /// <summary>Most corpus entries kept (seeds plus entries with new outcomes).</summary>
    public const int CorpusEntriesMax = 4096;

    /// <summary>Default per-input time bound, in ms (generous: the machine may be loaded, and a GC may pause).</summary>
    public const int HangMsDefault = 5000;

    /// <summary>Runs <paramref name="inputs"/> mutated inputs against <paramref name="target"/>; stops at the first failure.</summary>
    public static FuzzReport Run(FuzzTarget target, IReadOnlyList<byte[]> seeds, long inputs, int seed, int hangMs = HangMsDefault)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(seeds);
        var state = new RunState(target, seeds, inputs, seed);
        var worker = new Thread(state.Loop, 16 * 1024 * 1024) { IsBackground = true, Name = $"fuzz {target.Name}" };
        worker.Start();
        while (!worker.Join(100))
        {
            var startedTicks = Interlocked.Read(ref state.InputStartedTicks);
            if (startedTicks != 0 && Stopwatch.GetElapsedTime(startedTicks).TotalMilliseconds > hangMs)
            {
                // The worker is stuck in the target: report it (the background thread is abandoned).
                var input = state.CurrentInput ?? [];
                return state.Report(new FuzzFailure("hang", input, $"one input ran for more than {hangMs} ms"));
            }
        }

        return state.Report(state.Failure);
    }

    /// <summary>Loads a corpus folder's files (sorted by name, so that runs replay).</summary>
    public static List<byte[]> LoadCorpus(string? directory)
    {
        if (directory is null || !Directory.Exists(directory))
        {
            return [];
        }

        return [.. Directory.GetFiles(directory).Order(StringComparer.Ordinal).Select(File.ReadAllBytes)];
    }

    /// <summary>The seed from ARBITER_TEST_SEED when set, else a fresh one.</summary>
    public static int SeedFromEnvironment() =>
        int.TryParse(Environment.GetEnvironmentVariable("ARBITER_TEST_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed)
            ? seed
            : Random.Shared.Next();

    private sealed class RunState(FuzzTarget target, IReadOnlyList<byte[]> seeds, long inputs, int seed)
    {
        private readonly Stopwatch _elapsed = new();
        private readonly List<byte[]> _corpus = [];
        private readonly HashSet<int> _outcomes = [];
        private long _done;
        private long _allocatedMax;
        private int _allocatedMaxLength;
        private double _inputMsMax;
        private int _corpusStart;

        public long InputStartedTicks;

        public volatile byte[]? CurrentInput;

        public FuzzFailure? Failure { get; private set; }

        public void Loop()
        {
            _elapsed.Start();
            var random = new Random(seed);
            _corpus.AddRange(seeds.Where(s => s.Length <= target.InputBytesMax));
            _corpus.AddRange(target.BuiltInSeeds());
            if (_corpus.Count == 0)
            {
                _corpus.Add([]);
            }

            _corpusStart = _corpus.Count;

            // Warm-up (JIT, pools, lazy statics): every seed once, bounded in time but not in allocation.
            foreach (var entry in _corpus.ToList())
            {
                if (!RunOne(entry, measureAllocation: false))
                {
                    return;
                }
            }

            for (long i = 0; i < inputs; i++)
            {
                if (i > 0 && i % target.ResetEveryInputs == 0 && !TryReset())
                {
                    return;
                }

                var input = Mutator.Mutate(random, _corpus, target.InputBytesMax);
                if (!RunOne(input, measureAllocation: true))
                {
                    return;
                }

                _done++;
            }

            TryReset();
        }

        public FuzzReport Report(FuzzFailure? failure) =>
            new(target.Name, seed, Interlocked.Read(ref _done), _elapsed.Elapsed, _allocatedMax, _allocatedMaxLength, _inputMsMax, _corpusStart, _corpus.Count, _outcomes.Count, failure);

        // State kept across inputs is checked at a reset; a failure there concerns the inputs since the last one.
        private bool TryReset()
        {
            try
            {
                target.Reset();
                return true;
            }
#pragma warning disable CA1031 // Any exception is a finding, reported with the seed that replays it.
            catch (Exception e)
#pragma warning restore CA1031
            {
                Failure = new FuzzFailure("crash", CurrentInput ?? [], $"at a reset, after the inputs since the previous one (replay with seed {seed}): {e.GetType().FullName}: {e.Message}\n{e.StackTrace}");
                return false;
            }
        }

        private bool RunOne(byte[] input, bool measureAllocation)
        {
            CurrentInput = input;
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var started = Stopwatch.GetTimestamp();
            Interlocked.Exchange(ref InputStartedTicks, started);
            int outcome;
            try
            {
                outcome = target.Run(input);
            }
#pragma warning disable CA1031 // Any exception is a finding, reported with its input.
            catch (Exception e)
#pragma warning restore CA1031
            {
                Failure = new FuzzFailure("crash", input, $"{e.GetType().FullName}: {e.Message}\n{e.StackTrace}");
                return false;
            }
            finally
            {
                Interlocked.Exchange(ref InputStartedTicks, 0);
            }

            var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            _inputMsMax = Math.Max(_inputMsMax, ms);
            if (measureAllocation)
            {
                if (allocated > _allocatedMax)
                {
                    _allocatedMax = allocated;
                    _allocatedMaxLength = input.Length;
                }

                if (allocated > target.AllocationBytesMax(input.Length))
                {
                    Failure = new FuzzFailure("allocation", input, $"one input of {input.Length} B allocated {allocated:N0} B (bound {target.AllocationBytesMax(input.Length):N0} B)");
                    return false;
                }
            }

            if (_outcomes.Add(outcome) && _corpus.Count < CorpusEntriesMax)
            {
                _corpus.Add(input);
            }

            return true;
        }
    }
}
