using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace Arbiter.Server.Gateway;

/// <summary>
/// The gRPC call context of one gateway request: the service implementations and interceptors see
/// the same method name, metadata and cancellation as for a gRPC call. Metadata comes from the
/// HTTP headers as etcd's grpc-gateway forwards them: <c>Authorization</c> as <c>authorization</c>,
/// and every <c>Grpc-Metadata-&lt;key&gt;</c> header as <c>&lt;key&gt;</c>.
/// </summary>
internal sealed class GatewayCallContext : ServerCallContext
{
    /// <summary>grpc-gateway's prefix for headers passed through as gRPC metadata.</summary>
    public const string MetadataHeaderPrefix = "Grpc-Metadata-";

    /// <summary>The key under which Grpc.AspNetCore's <c>GetHttpContext()</c> finds the HTTP context.</summary>
    private const string HttpContextKey = "__HttpContext";

    private readonly HttpContext _http;
    private readonly string _method;
    private readonly Metadata _requestHeaders;
    private readonly Metadata _responseTrailers = [];
    private readonly Dictionary<object, object> _userState = new();

    public GatewayCallContext(HttpContext http, string method)
    {
        _http = http;
        _method = method;
        _requestHeaders = MetadataOf(http.Request.Headers);
        _userState[HttpContextKey] = http;
    }

    protected override string MethodCore => _method;

    protected override string HostCore => _http.Request.Host.Value ?? string.Empty;

    protected override string PeerCore => _http.Connection.RemoteIpAddress is { } address
        ? $"{(address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "ipv6" : "ipv4")}:{address}:{_http.Connection.RemotePort}"
        : "unknown";

    protected override DateTime DeadlineCore => DateTime.MaxValue;

    protected override Metadata RequestHeadersCore => _requestHeaders;

    protected override CancellationToken CancellationTokenCore => _http.RequestAborted;

    protected override Metadata ResponseTrailersCore => _responseTrailers;

    protected override Status StatusCore { get; set; }

    protected override WriteOptions? WriteOptionsCore { get; set; }

    protected override AuthContext AuthContextCore => new(null, new Dictionary<string, List<AuthProperty>>());

    protected override IDictionary<object, object> UserStateCore => _userState;

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("The JSON gateway does not propagate calls.");

    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;

    private static Metadata MetadataOf(IHeaderDictionary headers)
    {
        var metadata = new Metadata();
        foreach (var (name, values) in headers)
        {
            string? key = null;
            if (name.Equals("Authorization", StringComparison.OrdinalIgnoreCase))
            {
                key = "authorization";
            }
            else if (name.StartsWith(MetadataHeaderPrefix, StringComparison.OrdinalIgnoreCase) && name.Length > MetadataHeaderPrefix.Length)
            {
                key = name[MetadataHeaderPrefix.Length..].ToLowerInvariant();
            }

            if (key is null || key.EndsWith(Metadata.BinaryHeaderSuffix, StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var value in values)
            {
                if (value is not null)
                {
                    metadata.Add(key, value);
                }
            }
        }

        return metadata;
    }
}
