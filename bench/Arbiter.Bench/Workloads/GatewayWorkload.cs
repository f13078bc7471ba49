using System.Net;
using System.Text;

namespace Arbiter.Bench.Workloads;

/// <summary>
/// <c>gateway-put</c> / <c>gateway-range</c>: the <c>put</c> and <c>range-linearizable</c> operations
/// through etcd's HTTP/JSON gateway (<c>POST /v3/kv/put</c>, <c>/v3/kv/range</c>, JSON bodies with
/// base64 keys and values) over HTTP/1.1, as curl and gateway clients send them. Each client has its
/// own HTTP/1.1 connection from a shared pool (requests on one connection go one at a time).
/// </summary>
public sealed class GatewayWorkload(string operation) : Workload
{
    /// <summary>One pool for the process; each request has the run's timeout as a token.</summary>
    private static readonly HttpClient Http = new(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
    {
        DefaultRequestVersion = HttpVersion.Version11,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private string _endpoint = string.Empty;

    /// <inheritdoc />
    public override string Name => "gateway-" + operation;

    /// <inheritdoc />
    public override async Task SetupAsync(WorkloadContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        _endpoint = context.Options.Endpoints[0].TrimEnd('/');
        if (operation == "range")
        {
            await PreloadAsync(context, context.KeyPrefix, cancellationToken);
        }
    }

    /// <inheritdoc />
    public override Task SetupClientAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        client.State = Value(context.Options.ValueSizeBytes, client.Index).ToBase64();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public override async Task ExecuteAsync(WorkloadContext context, BenchClient client, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        var key = Key(context.KeyPrefix, client.Random.Next(context.Options.KeySpace)).ToBase64();
        var (path, body) = operation == "put"
            ? ("/v3/kv/put", $"{{\"key\":\"{key}\",\"value\":\"{(string)client.State!}\"}}")
            : ("/v3/kv/range", $"{{\"key\":\"{key}\"}}");
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(context.Options.RequestTimeoutMs);
        using var response = await Http.PostAsync(new Uri(_endpoint + path), content, timeout.Token);
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"{path}: {(int)response.StatusCode} {text}");
        }

        if (operation == "range" && !text.Contains("\"count\":\"1\"", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"expected one key, got {text}");
        }
    }
}
