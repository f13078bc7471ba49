using System.Security.Authentication;
using Arbiter.Node.Security;
using Grpc.Core;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;

namespace Arbiter.Server.Security;

/// <summary>TLS on an https client URL, as etcd's client port: ALPN (h2 for gRPC, http/1.1 for /metrics and /health), optional mutual TLS.</summary>
internal static class TlsListen
{
    /// <summary>Longest a TLS handshake may take, in ms.</summary>
    private const int HandshakeTimeoutMs = 10_000;

    /// <summary>
    /// Serves TLS on <paramref name="listen"/> with the client-port credentials. A client certificate
    /// is required under <c>--client-cert-auth</c>, otherwise asked for when a CA could check it (a
    /// member forwarding with its peer certificate). A certificate presented must chain to
    /// <c>--trusted-ca-file</c> or <c>--peer-trusted-ca-file</c>, or the handshake fails. What it
    /// proved is set on the connection as <see cref="ClientCertificateIdentity"/>.
    /// </summary>
    public static ListenOptions UseArbiterTls(this ListenOptions listen, TlsCredentials client, TlsCredentials? peer, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(client);
        listen.Protocols = HttpProtocols.Http1AndHttp2;
        var askForCertificate = client.TrustedCas.Count > 0 || peer is not null;
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = client.Certificate,
            SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CheckCertificateRevocation = false,
            HandshakeTimeout = TimeSpan.FromMilliseconds(HandshakeTimeoutMs),
            ClientCertificateMode = client.ClientCertAuth
                ? ClientCertificateMode.RequireCertificate
                : askForCertificate ? ClientCertificateMode.AllowCertificate : ClientCertificateMode.NoCertificate,
            ClientCertificateValidation = (certificate, chain, _) =>
            {
                if (client.Trusts(certificate, chain) || (peer?.Trusts(certificate, chain) ?? false))
                {
                    return true;
                }

                logger.LogWarning(
                    "Rejected a TLS client certificate (subject {Subject}, issuer {Issuer}): not issued by a CA of --trusted-ca-file{Peer}",
                    certificate.Subject, certificate.Issuer, peer is null ? string.Empty : " or --peer-trusted-ca-file");
                return false;
            },
        });

        listen.Use(next => context =>
        {
            if (context.Features.Get<ITlsConnectionFeature>()?.ClientCertificate is { } certificate)
            {
                context.Features.Set(new ClientCertificateIdentity(
                    certificate,
                    issuedByClientCa: client.Trusts(certificate),
                    issuedByPeerCa: peer?.Trusts(certificate) ?? false));
            }

            return next(context);
        });
        return listen;
    }

    /// <summary>The gRPC path prefix of the member-to-member services on the client port.</summary>
    public const string InternalServicePrefix = PeerCredential.InternalServicePrefix;

    /// <summary>
    /// The one internal call a member makes before it may know the peer secret: a member catching up
    /// by snapshot fetches the image, and the secret is inside it. That call is authorized by the
    /// image's SHA-256 instead (the ticket a member receives over the peer port; see
    /// <c>PeerService.FetchSnapshotImage</c>).
    /// </summary>
    public const string FetchSnapshotImagePath = "/arbiter.internal.v1.Peer/FetchSnapshotImage";

    /// <summary>
    /// The member-to-member services (forwarded proposals and reads, CRDT anti-entropy) answer only
    /// members: a call must carry the cluster's peer credential (<see cref="PeerCredential"/>), and
    /// with peer TLS also a certificate that chains to <c>--peer-trusted-ca-file</c>. Anyone else
    /// gets PERMISSION_DENIED and nothing is done. A call that carries a credential to a member that
    /// has not learned the secret yet gets UNAVAILABLE (the caller retries; nothing is done either).
    /// </summary>
    public static async Task GuardInternalServicesAsync(HttpContext context, RequestDelegate next, bool peerTls, Func<string?> expectedCredential)
    {
        if (context.Request.Path.Value is { } path && path.StartsWith(InternalServicePrefix, StringComparison.Ordinal))
        {
            if (peerTls && ClientCertificateIdentity.Of(context) is not { IssuedByPeerCa: true })
            {
                await RefuseAsync(context, StatusCode.PermissionDenied, "arbiter: member-to-member calls need a certificate issued by --peer-trusted-ca-file").ConfigureAwait(false);
                return;
            }

            if (!string.Equals(path, FetchSnapshotImagePath, StringComparison.Ordinal))
            {
                var presented = context.Request.Headers[PeerCredential.HeaderName];
                var expected = expectedCredential();
                if (presented.Count != 1 || string.IsNullOrEmpty(presented[0]))
                {
                    await RefuseAsync(context, StatusCode.PermissionDenied, "arbiter: member-to-member calls need the cluster's peer credential").ConfigureAwait(false);
                    return;
                }

                if (expected is null)
                {
                    await RefuseAsync(context, StatusCode.Unavailable, "arbiter: this member has not learned the cluster's peer secret yet").ConfigureAwait(false);
                    return;
                }

                if (!PeerCredential.Matches(presented[0], expected))
                {
                    await RefuseAsync(context, StatusCode.PermissionDenied, "arbiter: member-to-member calls need the cluster's peer credential").ConfigureAwait(false);
                    return;
                }
            }
        }

        await next(context).ConfigureAwait(false);
    }

    private static async Task RefuseAsync(HttpContext context, StatusCode code, string message)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = message;
        await context.Response.CompleteAsync().ConfigureAwait(false);
    }
}
