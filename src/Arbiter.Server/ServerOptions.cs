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

    /// <summary>
    /// Where to push traces and metrics over OpenTelemetry's protocol (OTLP); null: nothing is pushed
    /// (<c>/metrics</c> still serves the metrics). See <see cref="OtlpExportOptions"/>.
    /// </summary>
    public OtlpExportOptions? Otlp { get; init; }
}

/// <summary>
/// OTLP export (<c>--otlp-endpoint</c>, <c>--otlp-protocol</c>, or OpenTelemetry's standard
/// <c>OTEL_EXPORTER_OTLP_*</c> variables): the server's and node's spans (sources
/// <c>Arbiter.Server</c> and <c>Arbiter.Node</c>) and every meter <c>/metrics</c> shows.
/// </summary>
/// <param name="Endpoint">The collector's base URL; null: OpenTelemetry's environment variables decide.</param>
/// <param name="HttpProtobuf">True for OTLP over HTTP/protobuf (paths <c>/v1/traces</c>, <c>/v1/metrics</c>), false for OTLP/gRPC.</param>
public sealed record OtlpExportOptions(Uri? Endpoint, bool HttpProtobuf);
