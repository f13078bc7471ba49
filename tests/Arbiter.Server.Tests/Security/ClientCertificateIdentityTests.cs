using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Arbiter.Node;
using Arbiter.Node.Security;
using Arbiter.Server.Security;
using Arbiter.Server.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Arbiter.Server.Tests.Security;

/// <summary>
/// The seam authentication reads: the common name of a client certificate verified against
/// <c>--trusted-ca-file</c>, per connection, on an https client URL.
/// </summary>
public sealed class ClientCertificateIdentityTests
{
    [Fact]
    public async Task VerifiedClientCommonNameIsTheCertificatesCnOnlyForTheClientCa()
    {
        var directory = Path.Combine(Path.GetTempPath(), $"arbiter-cn-{Guid.NewGuid():N}");
        try
        {
            var clients = ThrowawayCertificateAuthority.WriteSet(Path.Combine(directory, "clients"), "alice");
            var peers = ThrowawayCertificateAuthority.WriteSet(Path.Combine(directory, "peers"), "not-a-user");
            using var clientTls = TlsCredentials.Load(clients.ServerCertFile, clients.ServerKeyFile, clients.CaFile, clientCertAuth: false);
            using var peerTls = TlsCredentials.Load(peers.PeerCertFile, peers.PeerKeyFile, peers.CaFile, clientCertAuth: true, "peer-");
            await using var node = await ArbiterNode.StartAsync(new NodeOptions { ClientTls = clientTls, PeerTls = peerTls });
            var url = $"https://127.0.0.1:{Backend.FreePort()}";
            await using var app = ArbiterServer.Build(node, new ServerOptions { ListenClientUrls = [url] });
            app.MapGet("/whoami", (HttpContext context) => ClientCertificateIdentity.VerifiedClientCommonName(context) ?? "(none)");
            await app.StartAsync();
            try
            {
                Assert.Equal("alice", await WhoAmIAsync(url, clients.CaFile, clients.ClientCertFile, clients.ClientKeyFile));

                // A member's peer certificate is accepted on the connection, but it is not a user.
                Assert.Equal("(none)", await WhoAmIAsync(url, clients.CaFile, peers.PeerCertFile, peers.PeerKeyFile));

                // No certificate (client-cert-auth is off here): no user from TLS.
                Assert.Equal("(none)", await WhoAmIAsync(url, clients.CaFile, certFile: null, keyFile: null));
            }
            finally
            {
                await app.StopAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<string> WhoAmIAsync(string url, string caFile, string? certFile, string? keyFile)
    {
        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(caFile);
        using var certificate = certFile is null ? null : X509Certificate2.CreateFromPemFile(certFile, keyFile);
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = certificate is null ? null : [certificate],
                LocalCertificateSelectionCallback = certificate is null ? null : (_, _, _, _, _) => certificate,
                RemoteCertificateValidationCallback = TlsCredentials.ServerValidation(roots, checkName: true),
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        return await http.GetStringAsync(new Uri(url + "/whoami"));
    }
}
