using System.Globalization;
using Arbiter.Protocol.Etcd;
using Grpc.Core;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>range-linearizable</c> / <c>range-serializable</c> / <c>range-session</c> / <c>range-bounded</c>:
/// a single-key Range of a random preloaded key at that read consistency. Serializable uses etcd's
/// own flag (so it means the same on etcd); session and bounded use Arbiter's request metadata
/// (<c>arbiter-consistency</c>), which etcd ignores (it would serve them linearizably). A session
/// client starts from the preload's token and keeps the highest revision it has seen, as the SDK's
/// <c>ArbiterSession</c> does.
/// </summary>
public sealed class RangeWorkload(string level) : Workload
{
    /// <summary>The read levels this workload knows.</summary>
    public static IReadOnlyList<string> Levels { get; } = ["linearizable", "serializable", "session", "bounded"];

    private string? _preloadToken;

    /// <inheritdoc />
    public override string Name => "range-" + level;

    /// <inheritdoc />
    public override async Task SetupAsync(WorkloadContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        await PreloadAsync(context, context.KeyPrefix, cancellationToken);
        var client = context.NewClient(0);
        var header = (await client.Kv.RangeAsync(new RangeRequest { Key = Key(context.KeyPrefix, 0) }, client.Call(cancellationToken))).Header;
        _preloadToken = Token(header);
    }

    /// <inheritdoc />
    public override Task SetupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        client.State = _preloadToken;
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var request = new RangeRequest
        {
            Key = Key(context.KeyPrefix, client.Random.Next(context.Options.KeySpace)),
            Serializable = level == "serializable",
        };
        var call = client.Call(cancellationToken);
        switch (level)
        {
            case "session":
                call = call.WithHeaders(new Metadata { { "arbiter-consistency", "session" }, { "arbiter-token", (string)client.State! } });
                break;
            case "bounded":
                call = call.WithHeaders(new Metadata
                {
                    { "arbiter-consistency", "bounded" },
                    { "arbiter-max-staleness-ms", context.Options.MaxStalenessMs.ToString(CultureInfo.InvariantCulture) },
                });
                break;
            default:
                break;
        }

        var response = await client.Kv.RangeAsync(request, call);
        if (response.Kvs.Count != 1)
        {
            throw new InvalidOperationException($"expected one key, got {response.Kvs.Count}");
        }

        if (level == "session")
        {
            // The session moves on to what this read saw (monotonic reads).
            client.State = Token(response.Header);
        }
    }

    /// <summary>The token string of a response header (the documented <c>arb1.cluster.revision</c> form).</summary>
    private static string Token(ResponseHeader header) =>
        string.Create(CultureInfo.InvariantCulture, $"arb1.{header.ClusterId:x16}.{header.Revision:x}");
}
