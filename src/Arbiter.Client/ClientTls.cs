using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Arbiter.Protocol.Security;

namespace Arbiter.Client;

/// <summary>The SDK's TLS settings for https endpoints, loaded once from <see cref="ArbiterClientOptions"/>.</summary>
internal sealed class ClientTls
{
    private readonly X509Certificate2Collection? _roots;
    private readonly X509Certificate2? _certificate;

    private ClientTls(X509Certificate2Collection? roots, X509Certificate2? certificate)
    {
        _roots = roots;
        _certificate = certificate;
    }

    /// <summary>The settings, or null when none of the TLS options is set.</summary>
    public static ClientTls? Load(ArbiterClientOptions options)
    {
        if (options.CaFile is null && options.CertFile is null && options.KeyFile is null)
        {
            return null;
        }

        if ((options.CertFile is null) != (options.KeyFile is null))
        {
            throw new TlsConfigurationException("CertFile and KeyFile go together: give both or neither");
        }

        X509Certificate2Collection? roots = null;
        if (options.CaFile is not null)
        {
            roots = [];
            try
            {
                roots.ImportFromPemFile(options.CaFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                throw new TlsConfigurationException($"CaFile {options.CaFile}: cannot read a PEM certificate bundle ({e.Message})");
            }

            if (roots.Count == 0)
            {
                throw new TlsConfigurationException($"CaFile {options.CaFile}: holds no PEM certificate");
            }
        }

        X509Certificate2? certificate = null;
        if (options.CertFile is not null)
        {
            try
            {
                certificate = X509Certificate2.CreateFromPemFile(options.CertFile, options.KeyFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                throw new TlsConfigurationException($"CertFile {options.CertFile} and KeyFile {options.KeyFile} do not make a certificate with its key: {e.Message}");
            }
        }

        return new ClientTls(roots, certificate);
    }

    /// <summary>A handler for one channel: the server's certificate must chain to the CA file (and name the host dialled); the client certificate is shown when asked for.</summary>
    public HttpMessageHandler CreateHandler()
    {
        var certificate = _certificate;
        return new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                ClientCertificates = certificate is null ? null : [certificate],
                LocalCertificateSelectionCallback = certificate is null ? null : (_, _, _, _, _) => certificate,
                RemoteCertificateValidationCallback = _roots is null ? null : CertificateTrust.ServerValidation(_roots, checkName: true),
            },
        };
    }
}
