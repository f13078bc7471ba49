using Arbiter.Client;
using Arbiter.Protocol.Consistency;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Arbiter.Hosting;

/// <summary>Where <see cref="ArbiterSessionMiddleware"/> keeps the token between requests.</summary>
public sealed class ArbiterSessionOptions
{
    /// <summary>Request and response header carrying the token (for API clients); null to not use a header.</summary>
    public string? HeaderName { get; set; } = "Arbiter-Token";

    /// <summary>Cookie carrying the token (for browsers); null to not use a cookie.</summary>
    public string? CookieName { get; set; } = "arbiter-token";

    /// <summary>Lifetime of the cookie; null makes it a browser-session cookie.</summary>
    public TimeSpan? CookieMaxAge { get; set; }
}

/// <summary>
/// Gives every HTTP request an <see cref="ArbiterSession"/> started from the token the caller
/// brought (header or cookie) and hands the session's token back on the response. A user who
/// changes their profile picture and refreshes sees the new one, whichever Arbiter member serves
/// the refresh: read-your-writes per user, in one line (<c>app.UseArbiterSession()</c>).
/// Handlers get the session with <see cref="ArbiterSessionHttpContextExtensions.GetArbiterSession"/>.
/// A token that is malformed, or of another cluster than the tokens this middleware has handed out,
/// is dropped (logged), not an error: the request starts a fresh session. The token is written when the response starts, so reads and writes
/// made after the body started are not carried to the next request.
/// </summary>
public sealed class ArbiterSessionMiddleware(RequestDelegate next, ArbiterClient client, ArbiterSessionOptions options, ILogger<ArbiterSessionMiddleware> logger)
{
    /// <summary>The cluster id seen in the latest token handed out (0 until then): tokens of another cluster are dropped.</summary>
    private long _clusterId;

    /// <summary>Runs the request with its session.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var session = new ArbiterSession(client);
        var brought = Brought(context);
        if (brought is not null)
        {
            var known = (ulong)Interlocked.Read(ref _clusterId);
            if (!ConsistencyToken.TryParse(brought, out var token))
            {
                logger.LogInformation("Ignoring a malformed Arbiter token the request brought");
                brought = null;
            }
            else if (known != 0 && token.ClusterId != known)
            {
                // E.g. a cookie from before the cluster was rebuilt.
                logger.LogInformation("Ignoring the Arbiter token the request brought: cluster {TokenCluster:x16}, not {Cluster:x16}", token.ClusterId, known);
                brought = null;
            }
            else
            {
                session.Observe(token);
            }
        }

        context.Items[typeof(ArbiterSession)] = session;
        context.Response.OnStarting(() =>
        {
            if (session.CurrentToken is { } current)
            {
                Interlocked.Exchange(ref _clusterId, (long)current.ClusterId);
            }

            if (session.Token is { } token && token != brought)
            {
                if (options.HeaderName is { } header)
                {
                    context.Response.Headers[header] = token;
                }

                if (options.CookieName is { } cookie)
                {
                    context.Response.Cookies.Append(cookie, token, new CookieOptions
                    {
                        HttpOnly = true,
                        IsEssential = true,
                        SameSite = SameSiteMode.Lax,
                        Secure = context.Request.IsHttps,
                        MaxAge = options.CookieMaxAge,
                        Path = "/",
                    });
                }
            }

            return Task.CompletedTask;
        });
        await next(context).ConfigureAwait(false);
    }

    private string? Brought(HttpContext context)
    {
        string? fromHeader = null;
        if (options.HeaderName is { } header && context.Request.Headers.TryGetValue(header, out var values))
        {
            fromHeader = values.ToString();
        }

        string? fromCookie = null;
        if (options.CookieName is { } cookie)
        {
            fromCookie = context.Request.Cookies[cookie];
        }

        // Both: the later one (a header from another client may be ahead of this browser's cookie).
        if (fromHeader is not null && fromCookie is not null
            && ConsistencyToken.TryParse(fromHeader, out var h) && ConsistencyToken.TryParse(fromCookie, out var c) && h.ClusterId == c.ClusterId)
        {
            return h.Revision >= c.Revision ? fromHeader : fromCookie;
        }

        return fromHeader ?? fromCookie;
    }
}

/// <summary>Registration and access for <see cref="ArbiterSessionMiddleware"/>.</summary>
public static class ArbiterSessionHttpContextExtensions
{
    /// <summary>
    /// Gives every request an <see cref="ArbiterSession"/> carried between requests in a cookie and a
    /// header (names in <paramref name="configure"/>). Needs the <see cref="ArbiterClient"/> registered
    /// (<see cref="ArbiterServiceCollectionExtensions.AddArbiter(Microsoft.Extensions.DependencyInjection.IServiceCollection, Microsoft.Extensions.Configuration.IConfiguration, Action{ArbiterClientOptions}?)"/>).
    /// </summary>
    public static IApplicationBuilder UseArbiterSession(this IApplicationBuilder app, Action<ArbiterSessionOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        var options = new ArbiterSessionOptions();
        configure?.Invoke(options);
        return app.UseMiddleware<ArbiterSessionMiddleware>(app.ApplicationServices.GetRequiredService<ArbiterClient>(), options);
    }

    /// <summary>The request's session (from <see cref="UseArbiterSession"/>).</summary>
    /// <exception cref="InvalidOperationException">The middleware is not in the pipeline.</exception>
    public static ArbiterSession GetArbiterSession(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items.TryGetValue(typeof(ArbiterSession), out var session) && session is ArbiterSession s
            ? s
            : throw new InvalidOperationException("No Arbiter session: add app.UseArbiterSession() to the pipeline.");
    }
}
