using System.Globalization;

namespace Arbiter.Bench;

/// <summary>What one load-generator run does: which endpoints, which workloads, how hard.</summary>
public sealed record BenchOptions
{
    /// <summary>etcd v3 client URLs (h2c), e.g. <c>http://127.0.0.1:23790</c>; channels are spread over them.</summary>
    public IReadOnlyList<string> Endpoints { get; init; } = ["http://127.0.0.1:2379"];

    /// <summary>Workloads to run, in order (see <see cref="Workloads.WorkloadCatalog"/>).</summary>
    public IReadOnlyList<string> Workloads { get; init; } = ["put"];

    /// <summary>Concurrent closed-loop clients (each has one request in flight).</summary>
    public int Clients { get; init; } = 16;

    /// <summary>gRPC channels (HTTP/2 connections) the clients share round-robin.</summary>
    public int Connections { get; init; } = 4;

    /// <summary>Measured run length, when <see cref="TotalOps"/> is 0.</summary>
    public double DurationS { get; init; } = 10;

    /// <summary>Stop after this many operations (0: run for <see cref="DurationS"/>).</summary>
    public long TotalOps { get; init; }

    /// <summary>Unmeasured warm-up before the measured run.</summary>
    public double WarmupS { get; init; } = 1;

    /// <summary>Distinct keys (or lock names) the workload spreads over.</summary>
    public int KeySpace { get; init; } = 1000;

    /// <summary>Value size of every put.</summary>
    public int ValueSizeBytes { get; init; } = 256;

    /// <summary>Whole-run operation rate limit (0: as fast as the clients go).</summary>
    public double RateOpsPerSecond { get; init; }

    /// <summary>Fraction of reads in the <c>mixed</c> workload.</summary>
    public double ReadRatio { get; init; } = 0.9;

    /// <summary>Watchers in the <c>watch</c> workload (each has its own Watch stream).</summary>
    public int Watchers { get; init; } = 16;

    /// <summary>The level <c>--workload range</c> reads at (<c>--consistency</c>); null: linearizable.</summary>
    public string? RangeConsistency { get; init; }

    /// <summary>The bound of <c>range-bounded</c> reads (Arbiter's bounded staleness), in ms.</summary>
    public int MaxStalenessMs { get; init; } = 1000;

    /// <summary>Per-request deadline.</summary>
    public int RequestTimeoutMs { get; init; } = 10_000;

    /// <summary>Name of the system under test, copied into results (e.g. <c>etcd</c>, <c>arbiter</c>).</summary>
    public string Label { get; init; } = "";

    /// <summary>Key prefix for everything the run writes; workloads add their own sub-prefix.</summary>
    public string Prefix { get; init; } = "/bench/";

    /// <summary>JSON result file to write, or null.</summary>
    public string? OutPath { get; init; }

    /// <summary>Smoke mode: every workload, a few hundred operations each, no warm-up.</summary>
    public bool Smoke { get; init; }

    /// <summary>PEM CA bundle for https endpoints (etcdctl's <c>--cacert</c>); null: none.</summary>
    public string? CaFile { get; init; }

    /// <summary>PEM client certificate for mutual TLS (etcdctl's <c>--cert</c>).</summary>
    public string? CertFile { get; init; }

    /// <summary>PEM private key of <see cref="CertFile"/> (etcdctl's <c>--key</c>).</summary>
    public string? KeyFile { get; init; }

    /// <summary>Process id of the server under test (same machine): its CPU time over the measured window is recorded.</summary>
    public int ServerPid { get; init; }

    /// <summary>Print a progress line every second.</summary>
    public bool ProgressEnabled { get; init; } = true;

    /// <summary>The usage text.</summary>
    public const string Usage = """
        arbiter-bench run [options]       load an etcd v3 endpoint (Arbiter or etcd)
        arbiter-bench report --in DIR [--out DIR]   results.md + chart.png from result JSON files
        arbiter-bench probe --dir DIR [--out FILE]  fsync latency of DIR's disk, loopback RTT
        arbiter-bench transactions --arbiter URL --etcd URL --postgres CONN --out DIR [...]
                                          bank transfers per concurrency-control family (bench/transactions.sh)
        arbiter-bench transactions-report --in DIR  results.md + charts again from DIR/results.json

        run options:
          --endpoints URL[,URL]   etcd v3 client URLs                 (http://127.0.0.1:2379)
          --cacert/--cert/--key F TLS for https endpoints, as etcdctl's
          --workload NAME[,NAME]  put | range-linearizable | range-serializable | range-session |
                                  range-bounded | txn | mixed |
                                  lock-service | lock-recipe | watch | lease | all     (put)
                                  fill: every key once per --total = key space (bench/memory.sh)
          --clients N             concurrent clients                  (16)
          --connections N         gRPC channels shared by the clients (4)
          --duration S            measured seconds                    (10)
          --total N               stop after N operations instead     (0 = use --duration)
          --warmup S              unmeasured warm-up seconds          (1)
          --key-space N           distinct keys / lock names          (1000)
          --value-size BYTES      value size                          (256)
          --rate OPS              whole-run ops/s limit               (0 = unlimited)
          --read-ratio F          reads in 'mixed'                    (0.9)
          --watchers N            watchers in 'watch'                 (16)
          --timeout-ms MS         per-request deadline                (10000)
          --consistency LEVEL     'range' reads at linearizable | serializable | session | bounded
                                  (session and bounded are Arbiter metadata; etcd ignores them)
          --max-staleness-ms MS   bound of bounded-staleness reads    (1000)
          --label NAME            system name recorded in the results
          --prefix P              key prefix                          (/bench/)
          --out FILE              write the JSON result file
          --smoke                 every workload, a few hundred ops each (for tests)
          --quiet                 no progress lines
          --server-pid PID        record this local server's CPU time and RSS over the window
        """;

    private static string Level(string value) =>
        Bench.Workloads.RangeWorkload.Levels.Contains(value) ? value : throw new ArgumentException($"--consistency: one of {string.Join(", ", Bench.Workloads.RangeWorkload.Levels)}");

    /// <summary>Parses <c>run</c> options; throws <see cref="ArgumentException"/> on bad input.</summary>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value");
            options = name switch
            {
                "--endpoints" => options with { Endpoints = SplitList(Value()) },
                "--cacert" => options with { CaFile = Value() },
                "--cert" => options with { CertFile = Value() },
                "--key" => options with { KeyFile = Value() },
                "--workload" or "--workloads" => options with { Workloads = SplitList(Value()) },
                "--clients" => options with { Clients = PositiveInt(name, Value()) },
                "--connections" => options with { Connections = PositiveInt(name, Value()) },
                "--duration" => options with { DurationS = NonNegativeDouble(name, Value()) },
                "--total" => options with { TotalOps = (long)NonNegativeDouble(name, Value()) },
                "--warmup" => options with { WarmupS = NonNegativeDouble(name, Value()) },
                "--key-space" => options with { KeySpace = PositiveInt(name, Value()) },
                "--value-size" => options with { ValueSizeBytes = PositiveInt(name, Value()) },
                "--rate" => options with { RateOpsPerSecond = NonNegativeDouble(name, Value()) },
                "--read-ratio" => options with { ReadRatio = Ratio(name, Value()) },
                "--watchers" => options with { Watchers = PositiveInt(name, Value()) },
                "--timeout-ms" => options with { RequestTimeoutMs = PositiveInt(name, Value()) },
                "--label" => options with { Label = Value() },
                "--prefix" => options with { Prefix = Value() },
                "--out" => options with { OutPath = Value() },
                "--smoke" => options with { Smoke = true },
                "--quiet" => options with { ProgressEnabled = false },
                "--server-pid" => options with { ServerPid = PositiveInt(name, Value()) },
                "--max-staleness-ms" => options with { MaxStalenessMs = PositiveInt(name, Value()) },
                "--consistency" => options with { RangeConsistency = Level(Value()) },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        if (options.RangeConsistency is { } level)
        {
            options = options with { Workloads = [.. options.Workloads.Select(w => w == "range" ? "range-" + level : w)] };
        }

        if (options.Workloads.Count == 1 && options.Workloads[0] == "all")
        {
            options = options with { Workloads = Bench.Workloads.WorkloadCatalog.Names };
        }

        if (options.Smoke)
        {
            // A few hundred operations per workload, small enough for a unit test.
            options = options with
            {
                Workloads = options.Workloads.Count == 1 && options.Workloads[0] == "put" ? Bench.Workloads.WorkloadCatalog.Names : options.Workloads,
                TotalOps = options.TotalOps > 0 ? options.TotalOps : 200,
                WarmupS = 0,
                Clients = Math.Min(options.Clients, 4),
                Connections = Math.Min(options.Connections, 2),
                KeySpace = Math.Min(options.KeySpace, 50),
                Watchers = Math.Min(options.Watchers, 4),
            };
        }

        foreach (var workload in options.Workloads)
        {
            if (!Bench.Workloads.WorkloadCatalog.Names.Contains(workload) && !Bench.Workloads.WorkloadCatalog.ArbiterOnlyNames.Contains(workload)
                && !Bench.Workloads.WorkloadCatalog.GatewayNames.Contains(workload)
                && !Bench.Workloads.WorkloadCatalog.ExperimentNames.Contains(workload))
            {
                throw new ArgumentException($"unknown workload '{workload}'; known: {string.Join(", ", Bench.Workloads.WorkloadCatalog.Names.Concat(Bench.Workloads.WorkloadCatalog.ArbiterOnlyNames).Concat(Bench.Workloads.WorkloadCatalog.GatewayNames))}");
            }
        }

        foreach (var endpoint in options.Endpoints)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out _))
            {
                throw new ArgumentException($"bad endpoint '{endpoint}'");
            }
        }

        return options;
    }

    private static string[] SplitList(string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new ArgumentException($"{name} must be a positive integer, got '{value}'");

    private static double NonNegativeDouble(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d >= 0
            ? d
            : throw new ArgumentException($"{name} must be a non-negative number, got '{value}'");

    private static double Ratio(string name, string value)
    {
        var d = NonNegativeDouble(name, value);
        return d <= 1 ? d : throw new ArgumentException($"{name} must be between 0 and 1, got '{value}'");
    }
}
