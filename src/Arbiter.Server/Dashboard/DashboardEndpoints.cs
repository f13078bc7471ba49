using System.Text.Json;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Node.Auth;
using Arbiter.Server.Auth;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Arbiter.Server.Dashboard;

/// <summary>
/// The web dashboard on the client URLs: the page at <c>/ui/</c> (HTML, JavaScript and CSS
/// embedded in this assembly) and the read-only JSON it polls under <c>/ui/api/</c>. With auth on,
/// every API call needs a root user's token in the <c>Authorization</c> header (the page signs in
/// through the JSON gateway's <c>/v3/auth/authenticate</c>); the page itself holds no data.
/// </summary>
public static class DashboardEndpoints
{
    /// <summary>Where the page is served.</summary>
    public const string PagePath = "/ui";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private static readonly Dictionary<string, string> AssetTypes = new(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["dashboard.js"] = "text/javascript; charset=utf-8",
        ["dashboard.css"] = "text/css; charset=utf-8",
    };

    /// <summary>
    /// Maps the page and its API (not on metrics-only ports). The node (and what needs it) is
    /// resolved from the application's services at the first API call, so the application can be
    /// built while the node starts.
    /// </summary>
    public static void MapDashboard(this WebApplication app, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        var metricsPorts = options.ListenMetricsUrls.Select(url => ArbiterServer.ParseEndpoint(url).Port)
            .Except(options.ListenClientUrls.Select(url => ArbiterServer.ParseListenUrl(url).EndPoint.Port))
            .ToHashSet();
        var api = new Lazy<DashboardApi>(() => new DashboardApi(app.Services.GetRequiredService<ArbiterNode>(), app.Services.GetRequiredService<WatchStreamRegistry>()));

        app.MapGet(PagePath + "/{asset?}", (HttpContext context, string? asset) =>
        {
            if (metricsPorts.Contains(context.Connection.LocalPort))
            {
                return NotFoundAsync(context);
            }

            // The page's links are relative (api/…, dashboard.js): it lives at /ui/, not /ui.
            if (asset is null && context.Request.Path.Value?.EndsWith('/') != true)
            {
                context.Response.Redirect(context.Request.PathBase + PagePath + "/");
                return Task.CompletedTask;
            }

            return ServeAssetAsync(context, asset ?? "index.html");
        });

        void MapApi(string name, Func<HttpContext, CancellationToken, Task<object>> read) =>
            app.MapGet($"{PagePath}/api/{name}", async context =>
            {
                if (metricsPorts.Contains(context.Connection.LocalPort))
                {
                    await NotFoundAsync(context).ConfigureAwait(false);
                    return;
                }

                await AnswerAsync(context, app.Services.GetRequiredService<ArbiterNode>(), app.Services.GetRequiredService<Authenticator>(), read).ConfigureAwait(false);
            });

        MapApi("cluster", async (_, token) => await api.Value.ClusterAsync(token).ConfigureAwait(false));
        MapApi("keys", async (context, token) => await api.Value.KeysAsync(KeyParameter(context, "prefix", required: false), token).ConfigureAwait(false));
        MapApi("key", (context, _) => Task.FromResult<object>(api.Value.KeyHistory(KeyParameter(context, "key", required: true))));
        MapApi("leases", async (_, token) => await api.Value.LeasesAsync(token).ConfigureAwait(false));
        MapApi("locks", async (_, token) => await api.Value.LocksAsync(token).ConfigureAwait(false));
        MapApi("watches", (_, _) => Task.FromResult<object>(api.Value.Watches()));
    }

    /// <summary>
    /// Checks the caller (root's token when auth is on), runs <paramref name="read"/> as that
    /// identity and writes its JSON; refusals and failures are JSON errors with etcd's text.
    /// </summary>
    private static async Task AnswerAsync(HttpContext context, ArbiterNode node, Authenticator authenticator, Func<HttpContext, CancellationToken, Task<object>> read)
    {
        context.Response.Headers.CacheControl = "no-store";
        var token = context.RequestAborted;
        try
        {
            if (node.AuthEnabled)
            {
                var presented = context.Request.Headers.Authorization.ToString();
                if (presented.Length == 0)
                {
                    await ErrorAsync(context, StatusCodes.Status401Unauthorized, "authentication is enabled: sign in as a root user", loginRequired: true).ConfigureAwait(false);
                    return;
                }

                var identity = await authenticator.ResolveAsync(presented, token).ConfigureAwait(false);
                if (node.ReadAuth(s => s.CheckAdmin(identity.User)) is { } refusal)
                {
                    await ErrorAsync(context, StatusCodes.Status403Forbidden, $"the dashboard is for root users only ({refusal.Message})", loginRequired: true).ConfigureAwait(false);
                    return;
                }

                // The node checks reads against the call's identity, as it does for gRPC calls.
                CallIdentity.Current = identity;
            }

            var answer = await read(context, token).ConfigureAwait(false);
            context.Response.ContentType = "application/json; charset=utf-8";
            await JsonSerializer.SerializeAsync(context.Response.Body, answer, answer.GetType(), Json, token).ConfigureAwait(false);
        }
        catch (ArgumentException e)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, e.Message, loginRequired: false).ConfigureAwait(false);
        }
        catch (EtcdException e) when (e.Error.StatusCode is ErrorStatusCode.Unauthenticated or ErrorStatusCode.PermissionDenied)
        {
            // An expired or revoked token, or a user whose rights changed: sign in again.
            await ErrorAsync(context, StatusCodes.Status401Unauthorized, e.Error.Message, loginRequired: true).ConfigureAwait(false);
        }
        catch (EtcdException e)
        {
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable, e.Error.Message, loginRequired: false).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The page went away.
        }
    }

    /// <summary>A key parameter in base64 (binary-safe, as etcd's JSON gateway takes keys).</summary>
    private static ByteString KeyParameter(HttpContext context, string name, bool required)
    {
        var text = context.Request.Query[name].ToString();
        if (text.Length == 0)
        {
            return required ? throw new ArgumentException($"'{name}' is missing: give the key in base64") : ByteString.Empty;
        }

        try
        {
            return ByteString.FromBase64(text);
        }
        catch (FormatException)
        {
            throw new ArgumentException($"'{name}' is not base64: give the key in base64, as etcd's JSON gateway takes keys");
        }
    }

    private static async Task ServeAssetAsync(HttpContext context, string asset)
    {
        if (!AssetTypes.TryGetValue(asset, out var contentType)
            || typeof(DashboardEndpoints).Assembly.GetManifestResourceStream($"{typeof(DashboardEndpoints).Namespace}.Assets.{asset}") is not { } stream)
        {
            await NotFoundAsync(context).ConfigureAwait(false);
            return;
        }

        await using (stream.ConfigureAwait(false))
        {
            context.Response.ContentType = contentType;
            context.Response.Headers.CacheControl = "no-cache";
            context.Response.Headers["X-Content-Type-Options"] = "nosniff";
            context.Response.Headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'";
            await stream.CopyToAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
        }
    }

    private static Task NotFoundAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }

    private static Task ErrorAsync(HttpContext context, int statusCode, string message, bool loginRequired)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json; charset=utf-8";
        return JsonSerializer.SerializeAsync(context.Response.Body, new DashboardError(message, loginRequired), Json, context.RequestAborted);
    }
}
