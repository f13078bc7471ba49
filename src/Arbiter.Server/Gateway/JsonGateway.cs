using System.Buffers;
using Arbiter.Node;
using Arbiter.Server.Services;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Etcd = Arbiter.Protocol.Etcd;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;

namespace Arbiter.Server.Gateway;

/// <summary>
/// etcd's HTTP/JSON gateway (etcd 3.4's grpc-gateway) on the client URLs: <c>POST /v3/…</c> and
/// <c>/v3beta/…</c> at the paths of the <c>google.api.http</c> annotations in the etcd protos, served
/// by the same service implementations and interceptors as gRPC; and <c>GET /version</c>.
/// See docs/api.md, "HTTP/JSON gateway".
/// </summary>
public static class JsonGateway
{
    /// <summary>The path prefixes served: etcd 3.4 serves <c>/v3</c> and <c>/v3beta</c> (and no longer <c>/v3alpha</c>).</summary>
    public static readonly IReadOnlyList<string> Prefixes = ["/v3", "/v3beta"];

    /// <summary>The prefix etcd 3.4 no longer serves; answered with Go's plain 404 as etcd does.</summary>
    public const string RetiredPrefix = "/v3alpha";

    /// <summary>etcd's version endpoint.</summary>
    public const string VersionPath = "/version";

    /// <summary>The headers etcd's client port adds to every HTTP response (its CORS handler).</summary>
    private static readonly (string Name, string Value)[] CorsHeaders =
    [
        ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
        ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
        ("Access-Control-Allow-Origin", "*"),
    ];

    /// <summary>The etcd services the gateway serves, with their descriptors and generated binders.</summary>
    private static readonly (Type Implementation, ServiceDescriptor Descriptor, Action<ServiceBinderBase, object> Bind)[] Services =
    [
        (typeof(KvService), Etcd.KV.Descriptor, (b, s) => Etcd.KV.BindService(b, (Etcd.KV.KVBase)s)),
        (typeof(WatchService), Etcd.Watch.Descriptor, (b, s) => Etcd.Watch.BindService(b, (Etcd.Watch.WatchBase)s)),
        (typeof(LeaseService), Etcd.Lease.Descriptor, (b, s) => Etcd.Lease.BindService(b, (Etcd.Lease.LeaseBase)s)),
        (typeof(ClusterService), Etcd.Cluster.Descriptor, (b, s) => Etcd.Cluster.BindService(b, (Etcd.Cluster.ClusterBase)s)),
        (typeof(MaintenanceService), Etcd.Maintenance.Descriptor, (b, s) => Etcd.Maintenance.BindService(b, (Etcd.Maintenance.MaintenanceBase)s)),
        (typeof(AuthService), Etcd.Auth.Descriptor, (b, s) => Etcd.Auth.BindService(b, (Etcd.Auth.AuthBase)s)),
        (typeof(LockService), Protocol.Lock.Lock.Descriptor, (b, s) => Protocol.Lock.Lock.BindService(b, (Protocol.Lock.Lock.LockBase)s)),
        (typeof(ElectionService), Protocol.Election.Election.Descriptor, (b, s) => Protocol.Election.Election.BindService(b, (Protocol.Election.Election.ElectionBase)s)),
    ];

    /// <summary>Largest request body read, in bytes: twice gRPC's receive limit (base64 and JSON quoting grow a message by a third and a little).</summary>
    public static int BodySizeBytesMax(NodeOptions nodeOptions, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(nodeOptions);
        ArgumentNullException.ThrowIfNull(options);
        return (int)Math.Min(int.MaxValue, 2L * (nodeOptions.Limits.RequestSizeBytesMax + options.GrpcOverheadBytes));
    }

    /// <summary>The <c>/version</c> body: this member's etcd API version and the cluster version (major.minor.0), as etcd reports them.</summary>
    public static string VersionBody
    {
        get
        {
            var parts = ArbiterNode.EtcdApiVersion.Split('.');
            return $"{{\"etcdserver\":\"{ArbiterNode.EtcdApiVersion}\",\"etcdcluster\":\"{parts[0]}.{parts[1]}.0\"}}";
        }
    }

    /// <summary>
    /// Maps the gateway's endpoints. The paths come from the protos; the routes (service
    /// instances, which need the node) are built at the first request, so the application can be
    /// built while the node starts.
    /// </summary>
    public static void MapJsonGateway(this WebApplication app, NodeOptions nodeOptions, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        var bodySizeBytesMax = BodySizeBytesMax(nodeOptions, options);
        var routes = new Lazy<Dictionary<string, GatewayRoute>>(() => BuildRoutes(app.Services));

        // The metrics URLs serve /metrics and /health only (etcd's --listen-metrics-urls).
        // (By port: a metrics URL on 0.0.0.0 is reached at the interface's own address.)
        var metricsPorts = options.ListenMetricsUrls.Select(url => ArbiterServer.ParseEndpoint(url).Port)
            .Except(options.ListenClientUrls.Select(url => ArbiterServer.ParseListenUrl(url).EndPoint.Port))
            .ToHashSet();
        RequestDelegate OnClientUrls(RequestDelegate serve) => http =>
        {
            if (metricsPorts.Contains(http.Connection.LocalPort))
            {
                http.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }

            return serve(http);
        };

        foreach (var prefix in Prefixes)
        {
            foreach (var path in RoutePaths())
            {
                var served = prefix + path["/v3".Length..];
                app.Map(served, OnClientUrls(http => ServeAsync(http, routes.Value[path], bodySizeBytesMax)));
            }

            // grpc-gateway's answer for an unknown path under its prefix.
            app.Map(prefix + "/{**rest}", OnClientUrls(http => PlainAsync(http, StatusCodes.Status404NotFound, "Not Found\n")));
        }

        app.Map(RetiredPrefix + "/{**rest}", OnClientUrls(http => PlainAsync(http, StatusCodes.Status404NotFound, "404 page not found\n")));
        app.MapGet(VersionPath, OnClientUrls(async http =>
        {
            AddCorsHeaders(http.Response);
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(VersionBody, http.RequestAborted).ConfigureAwait(false);
        }));
    }

    /// <summary>The <c>/v3/…</c> paths <see cref="BuildRoutes"/> gives routes for, from the descriptors alone (each service's methods in the order its generated binder adds them).</summary>
    private static IEnumerable<string> RoutePaths() =>
        Services.SelectMany(service => service.Descriptor.Methods.Where(method => !method.IsClientStreaming || method.IsServerStreaming))
            .SelectMany(GatewayRoute.PathsOf)
            .Distinct(StringComparer.Ordinal);

    /// <summary>The routes by their <c>/v3/…</c> path; where two methods share a path (etcd 3.4 gives HashKV Hash's path), the first declared serves it, as in etcd.</summary>
    private static Dictionary<string, GatewayRoute> BuildRoutes(IServiceProvider services)
    {
        var interceptors = services.GetRequiredService<IOptions<GrpcServiceOptions>>().Value.Interceptors
            .Select(registration => registration.Arguments.Count == 0
                ? (Interceptor)ActivatorUtilities.GetServiceOrCreateInstance(services, registration.Type)
                : (Interceptor)ActivatorUtilities.CreateInstance(services, registration.Type, [.. registration.Arguments]))
            .ToArray();
        var routes = new Dictionary<string, GatewayRoute>(StringComparer.Ordinal);
        foreach (var (implementation, descriptor, bind) in Services)
        {
            var binder = new Binder(descriptor, interceptors);
            bind(binder, ActivatorUtilities.CreateInstance(services, implementation));
            foreach (var route in binder.Routes)
            {
                foreach (var path in route.Paths)
                {
                    routes.TryAdd(path, route);
                }
            }
        }

        return routes;
    }

    private static async Task ServeAsync(HttpContext http, GatewayRoute route, int bodySizeBytesMax)
    {
        AddCorsHeaders(http.Response);
        if (HttpMethods.IsOptions(http.Request.Method))
        {
            // etcd's CORS handler answers a preflight with 200 and nothing else.
            return;
        }

        if (!HttpMethods.IsPost(http.Request.Method))
        {
            await PlainAsync(http, StatusCodes.Status405MethodNotAllowed, "Method Not Allowed\n").ConfigureAwait(false);
            return;
        }

        var body = await ReadBodyAsync(http.Request, bodySizeBytesMax).ConfigureAwait(false);
        if (body is null)
        {
            http.Response.StatusCode = GatewayJson.HttpStatusOf(StatusCode.ResourceExhausted);
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync(
                GatewayJson.ErrorBody(new Status(StatusCode.ResourceExhausted, $"gateway: request body larger than max ({bodySizeBytesMax} bytes)")),
                http.RequestAborted).ConfigureAwait(false);
            return;
        }

        await route.HandleAsync(http, body.Value).ConfigureAwait(false);
    }

    /// <summary>The whole body, or null when it is larger than <paramref name="sizeBytesMax"/>.</summary>
    private static async Task<ReadOnlyMemory<byte>?> ReadBodyAsync(HttpRequest request, int sizeBytesMax)
    {
        if (request.ContentLength > sizeBytesMax)
        {
            return null;
        }

        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(request.ContentLength ?? 4096, sizeBytesMax) + 1);
        while (true)
        {
            var memory = buffer.GetMemory(4096);
            var read = await request.Body.ReadAsync(memory, request.HttpContext.RequestAborted).ConfigureAwait(false);
            if (read == 0)
            {
                return buffer.WrittenMemory;
            }

            buffer.Advance(read);
            if (buffer.WrittenCount > sizeBytesMax)
            {
                return null;
            }
        }
    }

    private static Task PlainAsync(HttpContext http, int statusCode, string text)
    {
        AddCorsHeaders(http.Response);
        http.Response.StatusCode = statusCode;
        http.Response.ContentType = "text/plain; charset=utf-8";
        http.Response.Headers["X-Content-Type-Options"] = "nosniff";
        return http.Response.WriteAsync(text, http.RequestAborted);
    }

    private static void AddCorsHeaders(HttpResponse response)
    {
        foreach (var (name, value) in CorsHeaders)
        {
            response.Headers[name] = value;
        }
    }

    /// <summary>Collects a service's methods from its generated <c>BindService</c>, each wrapped in the server's interceptors.</summary>
    private sealed class Binder(ServiceDescriptor service, Interceptor[] interceptors) : ServiceBinderBase
    {
        private static readonly string WatchMethod = "/" + Etcd.Watch.Descriptor.FullName + "/Watch";

        public List<GatewayRoute> Routes { get; } = [];

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            ArgumentNullException.ThrowIfNull(method);
            ArgumentNullException.ThrowIfNull(handler);
            var call = handler;
            foreach (var interceptor in interceptors.Reverse())
            {
                var next = call;
                call = (request, context) => interceptor.UnaryServerHandler(request, context, next);
            }

            Routes.Add(new GatewayRoute.Unary<TRequest, TResponse>(DescriptorOf(method), method.FullName, call));
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            ArgumentNullException.ThrowIfNull(method);
            ArgumentNullException.ThrowIfNull(handler);
            var call = handler;
            foreach (var interceptor in interceptors.Reverse())
            {
                var next = call;
                call = (request, stream, context) => interceptor.ServerStreamingServerHandler(request, stream, context, next);
            }

            Routes.Add(new GatewayRoute.ServerStreaming<TRequest, TResponse>(DescriptorOf(method), method.FullName, call));
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            ArgumentNullException.ThrowIfNull(method);
            ArgumentNullException.ThrowIfNull(handler);
            var call = handler;
            foreach (var interceptor in interceptors.Reverse())
            {
                var next = call;
                call = (requests, responses, context) => interceptor.DuplexStreamingServerHandler(requests, responses, context, next);
            }

            Routes.Add(new GatewayRoute.Duplex<TRequest, TResponse>(DescriptorOf(method), method.FullName, call, holdRequestStreamOpen: method.FullName == WatchMethod));
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            // etcd's services have no client-streaming method.
        }

        private MethodDescriptor DescriptorOf(IMethod method) =>
            service.FindMethodByName(method.Name) ?? throw new InvalidOperationException($"{method.FullName} is not in {service.FullName}");
    }
}
