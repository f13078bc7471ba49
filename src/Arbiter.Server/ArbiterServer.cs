using System.Net;
using Arbiter.Node;
using Arbiter.Node.Metrics;
using Arbiter.Server.Concurrency;
using Arbiter.Server.Dashboard;
using Arbiter.Server.Gateway;
using Arbiter.Server.Http2;
using Arbiter.Server.Metrics;
using Arbiter.Server.Security;
using Arbiter.Server.Services;
using Arbiter.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Arbiter.Server;

/// <summary>Serves an <see cref="ArbiterNode"/> over the etcd v3 gRPC protocol.</summary>
public static class ArbiterServer
{
    /// <summary>Longest a stop waits for open calls before closing their connections.</summary>
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(3);

    /// <summary>Where Prometheus scrapes, on the client URLs and the metrics URLs (etcd's path).</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>etcd's plain-HTTP health check, on the client URLs and the metrics URLs.</summary>
    public const string HealthPath = "/health";

    /// <summary>
    /// Builds the web application: Kestrel on the client URLs (HTTP/2 without TLS on http URLs, as
    /// etcd's plain client port; TLS with ALPN on https URLs, mutual with --client-cert-auth), the
    /// etcd services, v3lock, v3election and grpc.health.v1, and etcd's HTTP/JSON gateway
    /// (<see cref="JsonGateway"/>: <c>/v3/…</c>, <c>/v3beta/…</c>, <c>/version</c>); <c>/metrics</c>
    /// (Prometheus text, through OpenTelemetry's exporter) and <c>/health</c> on the client URLs and
    /// on the metrics URLs; the web dashboard at <c>/ui/</c> (<see cref="DashboardEndpoints"/>).
    /// </summary>
    public static WebApplication Build(ArbiterNode node, ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(node);
        return Build(Task.FromResult(node), node.Options, options, configureLogging);
    }

    /// <summary>
    /// Builds the web application (as <see cref="Build(ArbiterNode, ServerOptions, Action{ILoggingBuilder}?)"/>)
    /// while the node is still starting: building needs only the node's options, and the node is
    /// resolved (from <paramref name="node"/>, through dependency injection) when requests arrive.
    /// Start the application only once <paramref name="node"/> has completed: anything that needs
    /// the node before then fails with <see cref="InvalidOperationException"/>. This is how
    /// <c>arbiter serve</c> takes the application's build (about as long as the node's own start)
    /// off a restarted member's way to serving (issue #12).
    /// </summary>
    public static WebApplication Build(Task<ArbiterNode> node, NodeOptions nodeOptions, ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(nodeOptions);
        ArgumentNullException.ThrowIfNull(options);
        // No reloadable appsettings: reloading watches the content root (by default the working
        // directory) recursively with inotify, and a data directory under it then wakes that
        // watcher on every log write.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        builder.Logging.ClearProviders();
        configureLogging?.Invoke(builder.Logging);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // gRPC streams are long-lived: each message is bounded (MaxReceiveMessageSize), not the body.
            kestrel.Limits.MaxRequestBodySize = null;
            ApplyEdgeLimits(kestrel.Limits, options.Edge);
            foreach (var url in options.ListenClientUrls)
            {
                var (endpoint, secure) = ParseListenUrl(url);
                kestrel.Listen(endpoint, listen =>
                {
                    if (secure)
                    {
                        // TLS with ALPN: h2 for gRPC, http/1.1 for /metrics and /health.
                        var tls = nodeOptions.ClientTls ?? throw new ArgumentException($"'{url}': an https client URL needs --cert-file and --key-file", nameof(options));
                        listen.UseArbiterTls(tls, nodeOptions.PeerTls, kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Arbiter.Tls"));
                    }
                    else
                    {
                        // gRPC over h2c (prior knowledge), and HTTP/1.1 for /metrics and /health as on etcd's client port.
                        listen.UseHttp1AndPriorKnowledgeHttp2(options.Edge.RequestHeaderTimeoutMs);
                    }

                    listen.UseAuthorityNormalization(options.Edge.RequestHeaderTimeoutMs);
                });
            }

            foreach (var url in options.ListenMetricsUrls)
            {
                // etcd's --listen-metrics-urls: plain HTTP serving /metrics and /health only.
                kestrel.Listen(ParseEndpoint(url), listen => listen.Protocols = HttpProtocols.Http1);
            }
        });

        if (node.IsCompletedSuccessfully)
        {
            // A started node: the caller owns it (the container does not dispose an instance it was given).
            builder.Services.AddSingleton(node.Result);
        }
        else
        {
            // Resolved when first needed, which is after the node has started (see above). Made by a
            // factory, it is disposed with the application; arbiter serve disposes it right after anyway.
            builder.Services.AddSingleton(_ => node.IsCompletedSuccessfully
                ? node.Result
                : throw new InvalidOperationException("The node is not ready: start the web application after the node has started."));
        }
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<NodeRecipes>();
        builder.Services.AddSingleton<ServerShutdown>();
        builder.Services.AddSingleton<Dashboard.WatchStreamRegistry>();

        // Long-running calls end as soon as stopping begins (ServerShutdown); this bounds whatever
        // a client keeps open beyond that (e.g. a request stream it never completes).
        builder.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(host => host.ShutdownTimeout = ShutdownTimeout);
        builder.Services.AddSingleton<EtcdErrorInterceptor>();
        builder.Services.AddSingleton(options.Auth);
        builder.Services.AddSingleton<Auth.Authenticator>();
        builder.Services.AddSingleton<Auth.AuthInterceptor>();
        builder.Services.AddSingleton<GrpcMetricsInterceptor>();
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("arbiter", serviceInstanceId: nodeOptions.Name))
            .WithMetrics(metrics =>
            {
                metrics
                    .AddMeter(NodeMetrics.MeterName, GrpcMetricsInterceptor.MeterName, StorageMetrics.MeterName)
                    .AddPrometheusExporter(prometheus =>
                    {
                        // Each scrape sees the counters as they are now; and etcd's label sets exactly
                        // (no otel_scope_* labels, no target_info series).
                        prometheus.ScrapeResponseCacheDurationMilliseconds = 0;
                        prometheus.ScopeInfoEnabled = false;
                        prometheus.TargetInfoEnabled = false;
                    });
                if (options.Otlp is { } otlp)
                {
                    metrics.AddOtlpExporter(exporter => Configure(exporter, otlp, "v1/metrics"));
                }
            });
        if (options.Otlp is { } tracesTo)
        {
            // Spans only while exported: with no listener, StartActivity costs nothing on the hot path.
            telemetry.WithTracing(tracing => tracing
                .AddSource(GrpcMetricsInterceptor.ActivitySourceName, NodeTracing.ActivitySourceName)
                .AddOtlpExporter(exporter => Configure(exporter, tracesTo, "v1/traces")));
        }

        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = Math.Max(options.MessageSizeBytesCap, nodeOptions.Limits.RequestSizeBytesMax + options.GrpcOverheadBytes);
            grpc.MaxSendMessageSize = null;
            grpc.EnableDetailedErrors = false;
            // Outermost first: the metrics see the status the client gets.
            grpc.Interceptors.Add<GrpcMetricsInterceptor>();
            grpc.Interceptors.Add<EtcdErrorInterceptor>();

            // Inside the error interceptor, so that its refusals carry etcd's status and text.
            grpc.Interceptors.Add<Auth.AuthInterceptor>();
        });

        var app = builder.Build();
        var peerTls = nodeOptions.PeerTls is not null;
        app.Use((context, next) => TlsListen.GuardInternalServicesAsync(context, next, peerTls, () => context.RequestServices.GetRequiredService<ArbiterNode>().PeerCredential));
        app.MapGrpcService<KvService>();
        app.MapGrpcService<WatchService>();
        app.MapGrpcService<LeaseService>();
        app.MapGrpcService<MaintenanceService>();
        app.MapGrpcService<ClusterService>();
        app.MapGrpcService<AuthService>();
        app.MapGrpcService<LockService>();
        app.MapGrpcService<TransactionsService>();
        app.MapGrpcService<ElectionService>();
        app.MapGrpcService<HealthService>();
        app.MapGrpcService<PeerService>();
        app.MapGrpcService<CrdtService>();
        app.MapGrpcService<CrdtPeerService>();
        app.MapPrometheusScrapingEndpoint(MetricsPath);
        app.MapGet(HealthPath, context => HealthEndpoint.HandleAsync(context, context.RequestServices.GetRequiredService<ArbiterNode>()));
        app.MapJsonGateway(nodeOptions, options);
        app.MapDashboard(options);

        // Create the endpoints now (gRPC's method discovery over every service, the routes'
        // metadata), which routing would otherwise do at the first request; while arbiter serve
        // builds this during the node's start, that takes them off a restarted member's first request.
        foreach (var source in ((IEndpointRouteBuilder)app).DataSources)
        {
            _ = source.Endpoints;
        }

        return app;
    }

    /// <summary>Sets Kestrel's connection, header and HTTP/2 limits from <paramref name="edge"/>.</summary>
    internal static void ApplyEdgeLimits(KestrelServerLimits limits, EdgeLimits edge)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(edge);
        limits.Http2.MaxStreamsPerConnection = edge.ConcurrentStreamsPerConnectionMax;
        limits.MaxRequestHeadersTotalSize = edge.RequestHeaderBytesMax;
        limits.Http2.MaxRequestHeaderFieldSize = edge.RequestHeaderBytesMax;
        limits.RequestHeadersTimeout = TimeSpan.FromMilliseconds(edge.RequestHeaderTimeoutMs);
        limits.KeepAliveTimeout = TimeSpan.FromMilliseconds(edge.IdleConnectionTimeoutMs);
        limits.Http2.KeepAlivePingDelay = edge.KeepAlivePingIntervalMs == 0 ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(edge.KeepAlivePingIntervalMs);
        limits.Http2.KeepAlivePingTimeout = edge.KeepAlivePingTimeoutMs == 0 ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(edge.KeepAlivePingTimeoutMs);
    }

    /// <summary>Parses a plain <c>http://host:port</c> URL (a metrics URL) into an endpoint.</summary>
    public static IPEndPoint ParseEndpoint(string url)
    {
        var (endpoint, secure) = ParseListenUrl(url);
        return secure
            ? throw new ArgumentException($"'{url}' is not a listen URL of the form http://<ip>:<port> (metrics URLs are plain HTTP)", nameof(url))
            : endpoint;
    }

    /// <summary>Parses <c>http://host:port</c> or <c>https://host:port</c> into an endpoint and whether it is TLS.</summary>
    public static (IPEndPoint EndPoint, bool Secure) ParseListenUrl(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"'{url}' is not a listen URL of the form http://<ip>:<port> or https://<ip>:<port>", nameof(url));
        }

        var secure = uri.Scheme == Uri.UriSchemeHttps;
        var port = uri.IsDefaultPort ? 2379 : uri.Port;
        if (uri.Host is "localhost")
        {
            return (new IPEndPoint(IPAddress.Loopback, port), secure);
        }

        if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address))
        {
            throw new ArgumentException($"'{url}': listen URLs need an IP address (or localhost), as etcd's do", nameof(url));
        }

        return (new IPEndPoint(address, port), secure);
    }

    /// <summary>An explicit endpoint and protocol override OpenTelemetry's environment variables.</summary>
    private static void Configure(OpenTelemetry.Exporter.OtlpExporterOptions exporter, OtlpExportOptions otlp, string signalPath)
    {
        if (otlp.Endpoint is not { } endpoint)
        {
            return;
        }

        exporter.Protocol = otlp.HttpProtobuf ? OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf : OpenTelemetry.Exporter.OtlpExportProtocol.Grpc;

        // Set in code, the endpoint is used as given: HTTP needs the signal's path appended.
        exporter.Endpoint = otlp.HttpProtobuf ? new Uri(endpoint, endpoint.AbsolutePath.TrimEnd('/') + "/" + signalPath) : endpoint;
    }
}
