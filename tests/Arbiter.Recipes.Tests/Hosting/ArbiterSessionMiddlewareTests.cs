using System.Net;
using System.Net.Sockets;
using Arbiter.Client;
using Arbiter.Embedded;
using Arbiter.Hosting;
using Arbiter.Node;
using Arbiter.Protocol.Consistency;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Arbiter.Recipes.Tests.Hosting;

/// <summary>
/// The ASP.NET Core middleware on a real Kestrel server: one line (<c>app.UseArbiterSession()</c>)
/// gives each user a session whose token travels in a cookie (browsers) or a header (API clients).
/// </summary>
public sealed class ArbiterSessionMiddlewareTests
{
    [Fact]
    public async Task The_token_travels_in_a_cookie_and_a_header_and_a_bad_one_starts_a_fresh_session()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions());
        await using var client = ArbiterClient.ForNode(node);
        var url = $"http://127.0.0.1:{FreePort()}";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.Services.AddArbiter(client);
        await using var app = builder.Build();
        app.UseArbiterSession();
        app.MapPost("/profile/picture", async (HttpContext context) =>
        {
            var picture = await new StreamReader(context.Request.Body).ReadToEndAsync();
            await context.GetArbiterSession().PutAsync("profile/picture", picture);
            return "ok";
        });
        app.MapGet("/profile/picture", async (HttpContext context) =>
            await context.GetArbiterSession().GetStringAsync("profile/picture") ?? "none");
        app.MapGet("/token", (HttpContext context) => context.GetArbiterSession().Token ?? "none");
        await app.StartAsync();

        using var handler = new HttpClientHandler { UseCookies = true, CookieContainer = new CookieContainer() };
        using var browser = new HttpClient(handler) { BaseAddress = new Uri(url) };

        // The write sets the cookie (and the header) to the write's token.
        using var written = await browser.PostAsync("/profile/picture", new StringContent("new.png"));
        written.EnsureSuccessStatusCode();
        var headerToken = ConsistencyToken.Parse(Assert.Single(written.Headers.GetValues("Arbiter-Token")));
        Assert.Equal(node.Revision, headerToken.Revision);
        Assert.Equal(node.ClusterId, headerToken.ClusterId);
        var cookie = handler.CookieContainer.GetCookies(new Uri(url))["arbiter-token"];
        Assert.NotNull(cookie);
        Assert.True(cookie.HttpOnly);
        Assert.Equal(headerToken.ToString(), cookie.Value);

        // The refresh brings the cookie back: its session starts at the write.
        Assert.Equal(headerToken.ToString(), await browser.GetStringAsync("/token"));
        Assert.Equal("new.png", await browser.GetStringAsync("/profile/picture"));

        // An API client hands the token over in the header (causal hand-off between users).
        using var api = new HttpClient { BaseAddress = new Uri(url) };
        Assert.Equal("none", await api.GetStringAsync("/token"));
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/token"))
        {
            request.Headers.Add("Arbiter-Token", headerToken.ToString());
            using var response = await api.SendAsync(request);
            Assert.Equal(headerToken.ToString(), await response.Content.ReadAsStringAsync());
        }

        // A token from the future is refused by the read (the app sees the typed error; here a 500).
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/profile/picture"))
        {
            request.Headers.Add("Arbiter-Token", (headerToken with { Revision = headerToken.Revision + 50 }).ToString());
            using var response = await api.SendAsync(request);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        }

        // A malformed or foreign token is dropped: the request starts a fresh session.
        foreach (var bad in new[] { "garbage", (headerToken with { ClusterId = headerToken.ClusterId ^ 1 }).ToString() })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/profile/picture");
            request.Headers.Add("Arbiter-Token", bad);
            using var response = await api.SendAsync(request);
            Assert.Equal("new.png", await response.Content.ReadAsStringAsync());
        }

        await app.StopAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
