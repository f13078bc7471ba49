using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using DotNext.Net.Security;

namespace Arbiter.Node.Security;

/// <summary>How a member secures what it sends to other members: the Raft transport and its calls to their client ports.</summary>
public static class PeerTransportSecurity
{
    private const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>
    /// DotNext's TLS options for the Raft TCP transport, or null without peer TLS. Both directions
    /// present the peer certificate; a member dialled must show a certificate that chains to
    /// <c>--peer-trusted-ca-file</c>; with <c>--peer-client-cert-auth</c> so must a member dialling in.
    /// Host names are not checked (one set of options serves every member; the CA is the check).
    /// </summary>
    public static SslOptions? RaftSslOptions(TlsCredentials? peer)
    {
        if (peer is null)
        {
            return null;
        }

        return new SslOptions
        {
            ServerOptions = new SslServerAuthenticationOptions
            {
                ServerCertificateContext = SslStreamCertificateContext.Create(peer.Certificate, additionalCertificates: null, offline: true),
                ClientCertificateRequired = peer.ClientCertAuth,
                EnabledSslProtocols = Protocols,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = (_, certificate, chain, _) => certificate is null
                    ? !peer.ClientCertAuth
                    : TrustsRemote(peer.TrustedCas, certificate, chain),
            },
            ClientOptions = new SslClientAuthenticationOptions
            {
                TargetHost = "arbiter-peer",
                ClientCertificates = [peer.Certificate],
                LocalCertificateSelectionCallback = (_, _, _, _, _) => peer.Certificate,
                EnabledSslProtocols = Protocols,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = TlsCredentials.ServerValidation(peer.TrustedCas, checkName: false),
            },
        };
    }

    /// <summary>
    /// The HTTP handler of a channel to another member's client URL. For https, this member shows
    /// its peer certificate (else its client-port one) and checks the other's against the CAs of
    /// both <paramref name="peer"/> and <paramref name="client"/>.
    /// </summary>
    public static SocketsHttpHandler ForwardingHandler(string url, TlsCredentials? peer, TlsCredentials? client)
    {
        ArgumentNullException.ThrowIfNull(url);
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, ConnectTimeout = TimeSpan.FromSeconds(2) };
        if (!url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            return handler;
        }

        var own = peer?.Certificate ?? client?.Certificate;
        var roots = new X509Certificate2Collection();
        roots.AddRange(peer?.TrustedCas ?? []);
        roots.AddRange(client?.TrustedCas ?? []);
        handler.SslOptions = new SslClientAuthenticationOptions
        {
            EnabledSslProtocols = Protocols,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            ClientCertificates = own is null ? null : [own],
            LocalCertificateSelectionCallback = own is null ? null : (_, _, _, _, _) => own,
            RemoteCertificateValidationCallback = roots.Count > 0 ? TlsCredentials.ServerValidation(roots, checkName: false) : null,
        };
        return handler;
    }

    /// <summary>
    /// Which of a member's advertised client URLs (comma-separated) other members call: with peer
    /// TLS the first https one (null if none), otherwise the first plain one, else the first.
    /// </summary>
    public static string? PickClientUrl(string advertisedClientUrls, bool peerTls)
    {
        ArgumentNullException.ThrowIfNull(advertisedClientUrls);
        var urls = advertisedClientUrls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var secure = urls.FirstOrDefault(u => u.StartsWith("https://", StringComparison.OrdinalIgnoreCase));
        if (peerTls)
        {
            return secure;
        }

        return urls.FirstOrDefault(u => u.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) ?? urls.FirstOrDefault();
    }

    private static bool TrustsRemote(X509Certificate2Collection roots, X509Certificate certificate, X509Chain? chain)
    {
        if (certificate is X509Certificate2 remote)
        {
            return TlsCredentials.ChainsTo(remote, roots, chain);
        }

        using var copy = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return TlsCredentials.ChainsTo(copy, roots, chain);
    }
}
