using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Arbiter.Protocol.Security;

namespace Arbiter.Node.Security;

/// <summary>
/// One side's TLS material, loaded from etcd's flags: a certificate with its private key
/// (<c>--cert-file</c>/<c>--key-file</c>, or the <c>--peer-</c> forms), the CAs whose certificates
/// the other side must chain to (<c>--trusted-ca-file</c>), and whether the other side must present
/// one (<c>--client-cert-auth</c>). Files are PEM, as etcd's; the key may be PKCS#8, PKCS#1 or SEC1.
/// </summary>
public sealed class TlsCredentials : IDisposable
{
    private TlsCredentials(X509Certificate2 certificate, X509Certificate2Collection trustedCas, bool clientCertAuth)
    {
        Certificate = certificate;
        TrustedCas = trustedCas;
        ClientCertAuth = clientCertAuth;
    }

    /// <summary>This side's certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The CAs a remote certificate must chain to (empty: none given).</summary>
    public X509Certificate2Collection TrustedCas { get; }

    /// <summary>True when the remote side must present a certificate that chains to <see cref="TrustedCas"/>.</summary>
    public bool ClientCertAuth { get; }

    /// <summary>
    /// Loads and checks the files. Throws <see cref="TlsConfigurationException"/> with one line naming
    /// the flag and the file when a file is missing or unreadable, holds no PEM certificate or key,
    /// or the key does not belong to the certificate; or when <paramref name="clientCertAuth"/> is set
    /// without a CA file.
    /// </summary>
    /// <param name="certFile">PEM certificate (chain) file.</param>
    /// <param name="keyFile">PEM private key file.</param>
    /// <param name="trustedCaFile">PEM CA bundle the other side's certificates must chain to, or null.</param>
    /// <param name="clientCertAuth">Whether the other side must present a certificate.</param>
    /// <param name="flagPrefix">"" for the client flags, "peer-" for the peer flags (used in messages).</param>
    public static TlsCredentials Load(string certFile, string keyFile, string? trustedCaFile, bool clientCertAuth, string flagPrefix = "")
    {
        ArgumentNullException.ThrowIfNull(certFile);
        ArgumentNullException.ThrowIfNull(keyFile);
        ArgumentNullException.ThrowIfNull(flagPrefix);
        var certText = ReadFile(certFile, $"--{flagPrefix}cert-file");
        var keyText = ReadFile(keyFile, $"--{flagPrefix}key-file");
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPem(certText, keyText);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new TlsConfigurationException($"--{flagPrefix}cert-file {certFile} and --{flagPrefix}key-file {keyFile} do not make a certificate with its key (a PEM certificate and the PEM private key that matches it are needed): {e.Message}");
        }

        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new TlsConfigurationException($"--{flagPrefix}key-file {keyFile}: no private key for --{flagPrefix}cert-file {certFile}");
        }

        var trusted = new X509Certificate2Collection();
        if (trustedCaFile is not null)
        {
            var caText = ReadFile(trustedCaFile, $"--{flagPrefix}trusted-ca-file");
            try
            {
                trusted.ImportFromPem(caText);
            }
            catch (CryptographicException e)
            {
                certificate.Dispose();
                throw new TlsConfigurationException($"--{flagPrefix}trusted-ca-file {trustedCaFile}: not a PEM certificate bundle: {e.Message}");
            }

            if (trusted.Count == 0)
            {
                certificate.Dispose();
                throw new TlsConfigurationException($"--{flagPrefix}trusted-ca-file {trustedCaFile}: holds no PEM certificate");
            }
        }
        else if (clientCertAuth)
        {
            certificate.Dispose();
            throw new TlsConfigurationException($"--{flagPrefix}client-cert-auth needs --{flagPrefix}trusted-ca-file (the CA client certificates must be issued by)");
        }

        return new TlsCredentials(certificate, trusted, clientCertAuth);
    }

    /// <summary>
    /// True when <paramref name="remote"/> chains to one of <see cref="TrustedCas"/> (and is within
    /// its validity period). Host names are not checked: the caller decides whether they matter.
    /// </summary>
    /// <param name="remote">The remote side's certificate.</param>
    /// <param name="presented">The chain the remote side sent, for its intermediate certificates.</param>
    public bool Trusts(X509Certificate2 remote, X509Chain? presented = null) => ChainsTo(remote, TrustedCas, presented);

    /// <summary>True when <paramref name="remote"/> chains to one of <paramref name="roots"/>, which alone are trusted.</summary>
    public static bool ChainsTo(X509Certificate2 remote, X509Certificate2Collection roots, X509Chain? presented = null) =>
        CertificateTrust.ChainsTo(remote, roots, presented);

    /// <summary>The client side's validation callback: see <see cref="CertificateTrust.ServerValidation"/>.</summary>
    public static RemoteCertificateValidationCallback ServerValidation(X509Certificate2Collection roots, bool checkName) =>
        CertificateTrust.ServerValidation(roots, checkName);

    /// <summary>The subject's common name (etcd takes the user name from it under client-cert-auth), or null.</summary>
    public static string? CommonName(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var name = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        return string.IsNullOrEmpty(name) ? null : name;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Certificate.Dispose();
        foreach (var ca in TrustedCas)
        {
            ca.Dispose();
        }
    }

    private static string ReadFile(string path, string flag)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new TlsConfigurationException($"{flag} {path}: cannot read it ({e.Message})");
        }
    }
}
