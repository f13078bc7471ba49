using System.Net;
using System.Net.Sockets;
using Arbiter.Client;
using Arbiter.Embedded;
using Arbiter.Node;
using Microsoft.AspNetCore.Builder;

namespace Arbiter.Server.Tests.Infrastructure;

/// <summary>A node reachable through the client abstraction, in-process or over gRPC on loopback.</summary>
public sealed class Backend : IAsyncDisposable
{
    private readonly WebApplication? _app;
    private bool _stopped;

    private Backend(ArbiterNode node, IArbiterClient client, WebApplication? app, string? endpoint)
    {
        Node = node;
        Client = client;
        _app = app;
        Endpoint = endpoint;
    }

    public ArbiterNode Node { get; }

    public IArbiterClient Client { get; }

    public string? Endpoint { get; }

    public static async Task<Backend> StartAsync(bool overGrpc, NodeOptions? options = null)
    {
        var node = await ArbiterNode.StartAsync(options ?? new NodeOptions());
        if (!overGrpc)
        {
            return new Backend(node, new EmbeddedArbiterClient(node), null, null);
        }

        var url = $"http://127.0.0.1:{FreePort()}";
        var app = ArbiterServer.Build(node, new ServerOptions { ListenClientUrls = [url] });
        await app.StartAsync();
        return new Backend(node, new GrpcArbiterClient(url), app, url);
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Stops the gRPC server (as on SIGTERM) and leaves the node running.</summary>
    public async Task StopServerAsync()
    {
        if (_app is not null && !_stopped)
        {
            _stopped = true;
            await _app.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await StopServerAsync();
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }

        await Node.DisposeAsync();
    }
}
