namespace Arbiter.Server;

/// <summary>How the gRPC server listens.</summary>
public sealed record ServerOptions
{
    /// <summary>URLs to listen on for clients (etcd's <c>--listen-client-urls</c>): http (h2c and HTTP/1.1) or https (TLS from <see cref="Arbiter.Node.NodeOptions.ClientTls"/>).</summary>
    public IReadOnlyList<string> ListenClientUrls { get; init; } = ["http://127.0.0.1:2379"];

    /// <summary>
    /// Extra plain-HTTP URLs serving only <c>/metrics</c> and <c>/health</c> (etcd's
    /// <c>--listen-metrics-urls</c>); none by default.
    /// </summary>
    public IReadOnlyList<string> ListenMetricsUrls { get; init; } = [];

    /// <summary>Extra bytes of gRPC framing allowed over the request limit (etcd: 512 KiB).</summary>
    public int GrpcOverheadBytes { get; init; } = 512 * 1024;

    /// <summary>
    /// Hard cap on one gRPC message, in bytes. Messages between etcd's receive limit and this cap
    /// are refused with etcd's exact error text; past the cap, grpc-dotnet refuses them itself.
    /// </summary>
    public int MessageSizeBytesCap { get; init; } = 64 * 1024 * 1024;

    /// <summary>Authentication: token kind and TTL, bcrypt cost (etcd's <c>--auth-token</c>, <c>--auth-token-ttl</c>, <c>--bcrypt-cost</c>).</summary>
    public Auth.AuthOptions Auth { get; init; } = new();

    /// <summary>Connection and stream limits of the client port (streams per connection, header sizes, timeouts).</summary>
    public EdgeLimits Edge { get; init; } = new();
}
