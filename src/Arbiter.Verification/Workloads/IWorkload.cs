using System.Collections.Concurrent;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.History;
using Grpc.Net.Client;

namespace Arbiter.Verification.Workloads;

/// <summary>
/// A workload: clients that drive the cluster and record what they did, and the checker that judges
/// the record. Later workloads (bank transfers with transactions, session guarantees, CRDT
/// convergence) implement this and register in <see cref="WorkloadRegistry"/>.
/// </summary>
public interface IWorkload
{
    /// <summary>Its name on the command line.</summary>
    string Name { get; }

    /// <summary>Runs until <paramref name="stop"/>, recording into <see cref="WorkloadContext.Recorder"/> (and the context's other records).</summary>
    Task RunAsync(WorkloadContext context, CancellationToken stop);

    /// <summary>Judges what was recorded.</summary>
    WorkloadCheck Check(HistoryFile history);
}

/// <summary>A workload's verdict.</summary>
/// <param name="Verdict">Ok, Violation or Unknown (checker out of budget).</param>
/// <param name="Violations">What was violated.</param>
/// <param name="Summary">One line on what was checked.</param>
public sealed record WorkloadCheck(Verdict Verdict, IReadOnlyList<Violation> Violations, string Summary);

/// <summary>Knobs shared by the workloads.</summary>
public sealed record WorkloadOptions
{
    /// <summary>Concurrent clients.</summary>
    public int Clients { get; init; } = 5;

    /// <summary>Keys (register) or locks (lock).</summary>
    public int Keys { get; init; } = 3;

    /// <summary>Deadline of each call, ms.</summary>
    public int CallTimeoutMs { get; init; } = 3_000;

    /// <summary>Register reads with <c>serializable</c> (served from the member's own state): the deliberately weak mode.</summary>
    public bool SerializableReads { get; init; }

    /// <summary>
    /// Register: readers per member on top of <see cref="Clients"/>. A pinned reader only reads, a few
    /// ms apart, and never moves to another member, as a client bound to one member does. With
    /// <see cref="SerializableReads"/> it keeps reading a member while that member is cut off, which is
    /// where the weak mode's stale reads come from; the other clients move away on their first failed write.
    /// </summary>
    public int PinnedReadersPerMember { get; init; }

    /// <summary>Lock workload: the lease TTL of each hold, seconds.</summary>
    public int LeaseTtlSeconds { get; init; } = 5;

    /// <summary>A prefix for every key, so that runs against a shared cluster do not see each other.</summary>
    public string KeyPrefix { get; init; } = $"verify/{Guid.NewGuid():N}"[..15] + "/";

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first knob out of range.</summary>
    public void Validate()
    {
        static void AtLeast(int value, int least, string name)
        {
            if (value < least)
            {
                throw new ArgumentException($"{name} must be at least {least}, not {value}");
            }
        }

        AtLeast(Clients, 1, "clients");
        AtLeast(Keys, 1, "keys");
        AtLeast(CallTimeoutMs, 1, "the call timeout (ms)");
        AtLeast(PinnedReadersPerMember, 0, "pinned readers per member");
        AtLeast(LeaseTtlSeconds, 1, "the lease TTL (s)");
    }
}

/// <summary>What a workload run has to work with, and where it records.</summary>
public sealed class WorkloadContext
{
    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);

    /// <summary>A context over <paramref name="endpoints"/>.</summary>
    public WorkloadContext(IReadOnlyList<string> endpoints, int seed, WorkloadOptions options, HistoryRecorder? recorder = null)
    {
        Endpoints = endpoints;
        Seed = seed;
        Options = options;
        Recorder = recorder ?? new HistoryRecorder();
    }

    /// <summary>Client URLs of the members.</summary>
    public IReadOnlyList<string> Endpoints { get; }

    /// <summary>The run's seed; each client derives its own random from it.</summary>
    public int Seed { get; }

    /// <summary>The knobs.</summary>
    public WorkloadOptions Options { get; }

    /// <summary>The operation history.</summary>
    public HistoryRecorder Recorder { get; }

    /// <summary>The harness's token-checking store (lock workload).</summary>
    public FencedStore Store { get; } = new();

    /// <summary>Watch streams (watch workload).</summary>
    public ConcurrentQueue<WatchStreamRecord> Watches { get; } = new();

    /// <summary>Lock holds (lock workload).</summary>
    public ConcurrentQueue<LockHold> Holds { get; } = new();

    /// <summary>Client-side faults: in-flight calls watch this token, and the client-fault nemesis cancels it.</summary>
    public ClientFaults ClientFaults { get; } = new();

    /// <summary>A shared channel to <paramref name="endpoint"/>.</summary>
    public GrpcChannel Channel(string endpoint) => _channels.GetOrAdd(endpoint, e => GrpcChannel.ForAddress(e, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20 }));

    /// <summary>The deadline of a call started now.</summary>
    public DateTime Deadline() => DateTime.UtcNow.AddMilliseconds(Options.CallTimeoutMs);

    /// <summary>Everything recorded, as a history file.</summary>
    public HistoryFile ToHistory() => new()
    {
        Operations = Recorder.Snapshot(),
        Watches = [.. Watches.OrderBy(w => w.Id)],
        Holds = [.. Holds.OrderBy(h => h.AcquiredNs)],
        Store = Store.Log(),
        Notes = Recorder.Notes(),
    };

    /// <summary>Disposes the channels.</summary>
    public void CloseChannels()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }

        _channels.Clear();
    }
}

/// <summary>A token that client-side fault injection cancels (and renews) to abort calls in flight.</summary>
public sealed class ClientFaults : IDisposable
{
    private CancellationTokenSource _source = new();

    /// <summary>The current token: pass it to every call.</summary>
    public CancellationToken Token => Volatile.Read(ref _source).Token;

    /// <summary>Aborts every call in flight now (their outcome becomes unknown) and arms a fresh token.</summary>
    public void AbortInFlight()
    {
        var old = Interlocked.Exchange(ref _source, new CancellationTokenSource());
        old.Cancel();
        old.Dispose();
    }

    /// <summary>Disposes the current token source.</summary>
    public void Dispose() => _source.Dispose();
}

/// <summary>The workloads by name; a plug-in adds its own with <see cref="Register"/>.</summary>
public static class WorkloadRegistry
{
    private static readonly ConcurrentDictionary<string, Func<IWorkload>> Factories = new(StringComparer.Ordinal)
    {
        ["register"] = () => new RegisterWorkload(),
        ["lock"] = () => new LockWorkload(),
        ["watch"] = () => new WatchWorkload(),
    };

    /// <summary>Every registered name.</summary>
    public static IReadOnlyList<string> Names => [.. Factories.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Adds (or replaces) a workload.</summary>
    public static void Register(string name, Func<IWorkload> factory) => Factories[name] = factory;

    /// <summary>A new instance of the workload named <paramref name="name"/>.</summary>
    public static IWorkload Create(string name) =>
        Factories.TryGetValue(name, out var factory) ? factory() : throw new ArgumentException($"no workload {name}; known: {string.Join(", ", Names)}", nameof(name));
}
