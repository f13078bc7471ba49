namespace Arbiter.Bench.Workloads;

/// <summary>Every workload by name.</summary>
public static class WorkloadCatalog
{
    /// <summary>Workload names, in the order <c>all</c> runs them.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "put", "range-linearizable", "range-serializable", "txn", "mixed", "lock-service", "lock-recipe", "watch", "lease", "cas-counter",
    ];

    /// <summary>
    /// Workloads run only when named: reads at Arbiter's own consistency levels (request metadata
    /// that etcd ignores, so they are not part of <c>all</c>, which compares with etcd).
    /// </summary>
    public static IReadOnlyList<string> ArbiterOnlyNames { get; } = ["range-session", "range-bounded", "crdt-increment"];

    /// <summary>
    /// Workloads run only when named that are not throughput cells: <c>fill</c> writes every key of
    /// the key space once per <c>--total</c> pass (the memory experiment, bench/memory.sh).
    /// </summary>
    public static IReadOnlyList<string> ExperimentNames { get; } = ["fill"];

    /// <summary>
    /// Workloads through etcd's HTTP/JSON gateway (HTTP/1.1, first endpoint only), run only when
    /// named: <c>gateway-put</c>, <c>gateway-range</c>.
    /// </summary>
    public static IReadOnlyList<string> GatewayNames { get; } = ["gateway-put", "gateway-range"];

    /// <summary>A fresh instance of workload <paramref name="name"/>.</summary>
    public static Workload Create(string name) => name switch
    {
        "put" => new PutWorkload(),
        "fill" => new FillWorkload(),
        "range" or "range-linearizable" => new RangeWorkload("linearizable"),
        "range-serializable" => new RangeWorkload("serializable"),
        "range-session" => new RangeWorkload("session"),
        "range-bounded" => new RangeWorkload("bounded"),
        "txn" => new TxnWorkload(),
        "mixed" => new MixedWorkload(),
        "lock-service" => new LockServiceWorkload(),
        "lock-recipe" => new LockRecipeWorkload(),
        "watch" => new WatchWorkload(),
        "lease" => new LeaseWorkload(),
        "crdt-increment" => new CrdtIncrementWorkload(),
        "cas-counter" => new CasCounterWorkload(),
        "gateway-put" => new GatewayWorkload("put"),
        "gateway-range" => new GatewayWorkload("range"),
        _ => throw new ArgumentException($"unknown workload '{name}'", nameof(name)),
    };
}
