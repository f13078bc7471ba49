using System.Net;
using System.Security.Cryptography.X509Certificates;
using Arbiter.Client;
using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>Real etcd 3.4 and Arbiter, each with the same certificates and the same TLS flags (client-cert-auth on).</summary>
public sealed class TlsServersFixture : IAsyncLifetime
{
    public TlsCertificates Certificates { get; } = new();

    public TlsServerProcess Etcd { get; private set; } = null!;

    public TlsServerProcess Arbiter { get; private set; } = null!;

    public IEnumerable<TlsServerProcess> Both => [Etcd, Arbiter];

    public async Task InitializeAsync()
    {
        var etcd = TlsServerProcess.StartEtcdAsync(Certificates.Set);
        var arbiter = TlsServerProcess.StartArbiterAsync(Certificates.Set);
        Etcd = await etcd;
        Arbiter = await arbiter;
    }

    public async Task DisposeAsync()
    {
        if (Etcd is not null)
        {
            await Etcd.DisposeAsync();
        }

        if (Arbiter is not null)
        {
            await Arbiter.DisposeAsync();
        }

        Certificates.Dispose();
    }
}

/// <summary>
/// TLS on the client port: etcdctl with <c>--cacert/--cert/--key</c> gives the same output from
/// etcd and Arbiter; certificates from another CA, no certificate, and plaintext on the TLS port
/// are refused by both; the SDK works over https with mutual TLS.
/// </summary>
public sealed class TlsTests(TlsServersFixture servers, ITestOutputHelper output) : IClassFixture<TlsServersFixture>
{
    private static readonly string[] RefusalTimeouts = ["--dial-timeout=2s", "--command-timeout=3s"];

    [Fact]
    public async Task EtcdctlOverMutualTlsGivesEtcdsOutput()
    {
        var prefix = $"tls-{Guid.NewGuid():N}"[..12] + "/";
        var transcripts = new Dictionary<string, List<string>>();
        foreach (var server in servers.Both)
        {
            var etcdctl = new EtcdctlRunner(server.TlsEndpoint);
            var flags = TlsCertificates.EtcdctlFlags(servers.Certificates.Set);
            var outputs = new List<string>();
            foreach (var command in new[]
            {
                new[] { "put", prefix + "a", "1" },
                ["put", prefix + "b", "2"],
                ["get", prefix + "a"],
                ["get", "--prefix", prefix, "--keys-only"],
                ["del", prefix + "a"],
                ["get", "--prefix", prefix],
                ["txn", "--interactive=false"],
            })
            {
                var stdin = command[0] == "txn" ? $"value(\"{prefix}b\") = \"2\"\n\nput {prefix}c 3\n\nput {prefix}c 4\n\n" : null;
                var result = await etcdctl.RunAsync([.. flags, .. command], stdin, TimeSpan.FromSeconds(30));
                outputs.Add($"{string.Join(' ', command[..1])} → {result.ExitCode}\n{result.Stdout}");
                Assert.True(result.ExitCode == 0, $"{server.Name}: {result}");
            }

            transcripts[server.Name] = outputs;
            output.WriteLine($"== {server.Name}\n{string.Join("\n", outputs)}");
        }

        Assert.Equal(transcripts["etcd-tls"], transcripts["arbiter-tls"]);
    }

    [Fact]
    public async Task ClientCertificateFromAnotherCaIsRefusedByBoth()
    {
        foreach (var server in servers.Both)
        {
            var etcdctl = new EtcdctlRunner(server.TlsEndpoint);
            var foreignFlags = new[] { $"--cacert={servers.Certificates.Set.CaFile}", $"--cert={servers.Certificates.Foreign.ClientCertFile}", $"--key={servers.Certificates.Foreign.ClientKeyFile}" };
            var foreign = await etcdctl.RunAsync([.. foreignFlags, .. RefusalTimeouts, "get", "x"], null, TimeSpan.FromSeconds(30));
            output.WriteLine($"{server.Name}, foreign client certificate: {foreign}");
            Assert.NotEqual(0, foreign.ExitCode);

            var none = await etcdctl.RunAsync([$"--cacert={servers.Certificates.Set.CaFile}", .. RefusalTimeouts, "get", "x"], null, TimeSpan.FromSeconds(30));
            output.WriteLine($"{server.Name}, no client certificate: {none}");
            Assert.NotEqual(0, none.ExitCode);
        }

        // Arbiter says why, once per refused handshake, in its log.
        Assert.Contains("Rejected a TLS client certificate", servers.Arbiter.Log, StringComparison.Ordinal);

        // The SDK with the foreign certificate: refused, nothing written.
        var options = new ArbiterClientOptions
        {
            CaFile = servers.Certificates.Set.CaFile,
            CertFile = servers.Certificates.Foreign.ClientCertFile,
            KeyFile = servers.Certificates.Foreign.ClientKeyFile,
            RetryAttemptsMax = 0,
            CallTimeoutMs = 5_000,
        };
        options.Endpoints.Add(servers.Arbiter.TlsEndpoint);
        await using var client = ArbiterClient.Connect(options);
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.PutAsync("tls/foreign", "x"));
        output.WriteLine($"SDK with a foreign certificate: {refused.Status}");
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Empty((await servers.Arbiter.Channel().Kv().RangeAsync(new RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8("tls/foreign") })).Kvs);
    }

    [Fact]
    public async Task PlaintextClientOnTheTlsPortIsRefusedPromptlyAndTheServerGoesOn()
    {
        foreach (var server in servers.Both)
        {
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{server.TlsPort}");
            var started = System.Diagnostics.Stopwatch.StartNew();
            var refused = await Assert.ThrowsAsync<RpcException>(() => new Maintenance.MaintenanceClient(channel)
                .StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync);
            output.WriteLine($"{server.Name}: h2c on the TLS port → {refused.Status} after {started.ElapsedMilliseconds} ms");
            Assert.NotEqual(StatusCode.DeadlineExceeded, refused.StatusCode);

            // Still serving TLS clients.
            using var tls = TlsChannel(server.TlsEndpoint, servers.Certificates.Set);
            await new Maintenance.MaintenanceClient(tls).StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(20));
        }
    }

    [Fact]
    public async Task SdkOverHttpsWithMutualTlsAgainstBoth()
    {
        foreach (var server in servers.Both)
        {
            var options = new ArbiterClientOptions
            {
                CaFile = servers.Certificates.Set.CaFile,
                CertFile = servers.Certificates.Set.ClientCertFile,
                KeyFile = servers.Certificates.Set.ClientKeyFile,
            };
            options.Endpoints.Add(server.TlsEndpoint);
            await using var client = ArbiterClient.Connect(options);
            var key = $"tls-sdk/{Guid.NewGuid():N}";
            await client.PutAsync(key, "over mTLS");
            Assert.Equal("over mTLS", (await client.GetAsync(key))?.Value.ToStringUtf8());
        }
    }

    [Fact]
    public async Task HealthOverHttpsWithHttp11IsEtcdsBody()
    {
        var bodies = new List<string>();
        foreach (var server in servers.Both)
        {
            using var handler = TlsHandler(servers.Certificates.Set);
            using var http = new HttpClient(handler) { DefaultRequestVersion = HttpVersion.Version11, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
            using var response = await http.GetAsync(new Uri(server.TlsEndpoint + "/health"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version11, response.Version);
            bodies.Add((await response.Content.ReadAsStringAsync()).Trim());
            output.WriteLine($"{server.Name}: {bodies[^1]}");
        }

        Assert.Equal(bodies[0], bodies[1]);
    }

    private static SocketsHttpHandler TlsHandler(Node.Security.TlsFileSet set)
    {
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(set.CaFile);
        var client = X509Certificate2.CreateFromPemFile(set.ClientCertFile, set.ClientKeyFile);
        return new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                ClientCertificates = [client],
                RemoteCertificateValidationCallback = Node.Security.TlsCredentials.ServerValidation(roots, checkName: true),
            },
        };
    }

    private static GrpcChannel TlsChannel(string endpoint, Node.Security.TlsFileSet set) =>
        GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions { HttpHandler = TlsHandler(set), DisposeHttpClient = true });
}

internal static class ChannelExtensions
{
    public static GrpcChannel Channel(this ServerProcess server) => GrpcChannel.ForAddress(server.Endpoint);

    public static KV.KVClient Kv(this GrpcChannel channel) => new(channel);
}
