using System.Net;
using Arbiter.Node;
using Arbiter.Server.Concurrency;
using Arbiter.Server.Http2;
using Arbiter.Server.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Arbiter.Server;

/// <summary>Serves an <see cref="ArbiterNode"/> over the etcd v3 gRPC protocol.</summary>
public static class ArbiterServer
{
    /// <summary>Longest a stop waits for open calls before closing their connections.</summary>
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Builds the web application: Kestrel on the client URLs (HTTP/2 without TLS, as etcd's
    /// plain client port), the etcd services, v3lock, v3election and grpc.health.v1.
    /// </summary>
    public static WebApplication Build(ArbiterNode node, ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(options);
        // No reloadable appsettings: reloading watches the content root (by default the working
        // directory) recursively with inotify, and a data directory under it then wakes that
        // watcher on every log write.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        builder.Logging.ClearProviders();
        configureLogging?.Invoke(builder.Logging);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.Http2.MaxStreamsPerConnection = 10_000;
            foreach (var url in options.ListenClientUrls)
            {
                var endpoint = ParseEndpoint(url);
                kestrel.Listen(endpoint, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    listen.UseAuthorityNormalization();
                });
            }
        });

        builder.Services.AddSingleton(node);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<NodeRecipes>();
        builder.Services.AddSingleton<ServerShutdown>();

        // Long-running calls end as soon as stopping begins (ServerShutdown); this bounds whatever
        // a client keeps open beyond that (e.g. a request stream it never completes).
        builder.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(host => host.ShutdownTimeout = ShutdownTimeout);
        builder.Services.AddSingleton<EtcdErrorInterceptor>();
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = Math.Max(options.MessageSizeBytesCap, node.Options.Limits.RequestSizeBytesMax + options.GrpcOverheadBytes);
            grpc.MaxSendMessageSize = null;
            grpc.EnableDetailedErrors = false;
            grpc.Interceptors.Add<EtcdErrorInterceptor>();
        });

        var app = builder.Build();
        app.MapGrpcService<KvService>();
        app.MapGrpcService<WatchService>();
        app.MapGrpcService<LeaseService>();
        app.MapGrpcService<MaintenanceService>();
        app.MapGrpcService<ClusterService>();
        app.MapGrpcService<LockService>();
        app.MapGrpcService<TransactionsService>();
        app.MapGrpcService<ElectionService>();
        app.MapGrpcService<HealthService>();
        app.MapGrpcService<PeerService>();
        app.MapGrpcService<CrdtService>();
        app.MapGrpcService<CrdtPeerService>();
        return app;
    }

    /// <summary>Parses <c>http://host:port</c> into an endpoint; only plain HTTP is served for now.</summary>
    public static IPEndPoint ParseEndpoint(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new ArgumentException($"'{url}' is not a listen URL of the form http://<ip>:<port> (TLS is not supported yet)", nameof(url));
        }

        var port = uri.IsDefaultPort ? 2379 : uri.Port;
        if (uri.Host is "localhost")
        {
            return new IPEndPoint(IPAddress.Loopback, port);
        }

        if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address))
        {
            throw new ArgumentException($"'{url}': listen URLs need an IP address (or localhost), as etcd's do", nameof(url));
        }

        return new IPEndPoint(address, port);
    }
}
