using System.Security.Cryptography.X509Certificates;
using Arbiter.Node.Security;
using Microsoft.AspNetCore.Http;

namespace Arbiter.Server.Security;

/// <summary>
/// What the TLS handshake proved about the caller's certificate, set once per connection on an
/// https client URL (see <see cref="TlsListen"/>). The seam for authentication: under
/// <c>--client-cert-auth</c> etcd takes the user name from the verified client certificate's common
/// name; read it with <see cref="VerifiedClientCommonName"/> (null: no verified client certificate
/// on this connection, so fall back to a token). <c>HttpContext.Connection.ClientCertificate</c>
/// holds the same certificate, but also one that is only a member's peer certificate.
/// </summary>
public sealed class ClientCertificateIdentity
{
    internal ClientCertificateIdentity(X509Certificate2 certificate, bool issuedByClientCa, bool issuedByPeerCa)
    {
        Certificate = certificate;
        IssuedByClientCa = issuedByClientCa;
        IssuedByPeerCa = issuedByPeerCa;
        CommonName = TlsCredentials.CommonName(certificate);
    }

    /// <summary>The certificate the caller presented (already validated by the handshake).</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The certificate chains to <c>--trusted-ca-file</c>: a client certificate in etcd's sense.</summary>
    public bool IssuedByClientCa { get; }

    /// <summary>The certificate chains to <c>--peer-trusted-ca-file</c>: another member calling (forwarding, CRDT anti-entropy).</summary>
    public bool IssuedByPeerCa { get; }

    /// <summary>The subject's common name, or null.</summary>
    public string? CommonName { get; }

    /// <summary>
    /// The common name of the client certificate verified against <c>--trusted-ca-file</c> on the
    /// connection <paramref name="context"/> arrived on; null on a plain connection, without a
    /// certificate, or with one not issued by that CA.
    /// </summary>
    public static string? VerifiedClientCommonName(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Features.Get<ClientCertificateIdentity>() is { IssuedByClientCa: true } identity ? identity.CommonName : null;
    }

    /// <summary>The identity proven on the connection <paramref name="context"/> arrived on, or null.</summary>
    public static ClientCertificateIdentity? Of(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Features.Get<ClientCertificateIdentity>();
    }
}
