using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Arbiter.Node.Security;

/// <summary>
/// A throw-away certificate authority for trying TLS out (<c>arbiter local-cluster --tls</c>,
/// <c>arbiter cert</c>) and for tests: an ECDSA P-256 CA that issues server, peer and client
/// certificates, written as PEM files (keys as PKCS#8, readable by etcd and etcdctl). Built with
/// .NET's <see cref="CertificateRequest"/>; no openssl at run time. Not for production: the CA key
/// sits in a plain file.
/// </summary>
public sealed class ThrowawayCertificateAuthority : IDisposable
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    private ThrowawayCertificateAuthority(X509Certificate2 certificate) => Certificate = certificate;

    /// <summary>The CA certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>A new self-signed CA named <paramref name="commonName"/>, valid from an hour ago for <paramref name="validity"/>.</summary>
    public static ThrowawayCertificateAuthority Create(string commonName, TimeSpan validity)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(commonName);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={commonName}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = DateTimeOffset.UtcNow;
        return new ThrowawayCertificateAuthority(request.CreateSelfSigned(now.AddHours(-1), now.Add(validity)));
    }

    /// <summary>
    /// The CA written earlier by <see cref="WriteSet"/> (<c>ca.crt</c> and <c>ca.key</c>), to issue more
    /// certificates from it, e.g. client certificates naming other users.
    /// </summary>
    public static ThrowawayCertificateAuthority Load(string certPath, string keyPath)
    {
        ArgumentNullException.ThrowIfNull(certPath);
        ArgumentNullException.ThrowIfNull(keyPath);
        return new ThrowawayCertificateAuthority(X509Certificate2.CreateFromPemFile(certPath, keyPath));
    }

    /// <summary>
    /// Issues a certificate for <paramref name="commonName"/> with the given subject alternative names,
    /// usable for both server and client authentication (etcd's members use theirs both ways). The
    /// result carries its private key.
    /// </summary>
    public X509Certificate2 Issue(string commonName, IEnumerable<string> dnsNames, IEnumerable<IPAddress> ipAddresses, TimeSpan validity)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(commonName);
        ArgumentNullException.ThrowIfNull(dnsNames);
        ArgumentNullException.ThrowIfNull(ipAddresses);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={commonName}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuth, ClientAuth], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var names = new SubjectAlternativeNameBuilder();
        foreach (var dns in dnsNames)
        {
            names.AddDnsName(dns);
        }

        foreach (var ip in ipAddresses)
        {
            names.AddIpAddress(ip);
        }

        request.CertificateExtensions.Add(names.Build());
        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7f;
        var now = DateTimeOffset.UtcNow;
        var notAfter = now.Add(validity) < Certificate.NotAfter ? now.Add(validity) : new DateTimeOffset(Certificate.NotAfter);
        using var issued = request.Create(Certificate, now.AddHours(-1), notAfter, serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>A certificate for a member on this machine: SANs localhost, 127.0.0.1 and ::1 (plus <paramref name="extraNames"/>).</summary>
    public X509Certificate2 IssueLocal(string commonName, TimeSpan validity, params string[] extraNames) =>
        Issue(commonName, ["localhost", .. extraNames], [IPAddress.Loopback, IPAddress.IPv6Loopback], validity);

    /// <summary>Writes the CA certificate (no key) to <paramref name="certPath"/> as PEM.</summary>
    public void WriteCertificate(string certPath) => WritePem(Certificate, certPath, keyPath: null);

    /// <summary>
    /// Writes <paramref name="certificate"/> as PEM to <paramref name="certPath"/>, and its private key
    /// (PKCS#8 PEM, mode 0600 on Unix) to <paramref name="keyPath"/> when given.
    /// </summary>
    public static void WritePem(X509Certificate2 certificate, string certPath, string? keyPath)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(certPath);
        File.WriteAllText(certPath, certificate.ExportCertificatePem() + "\n");
        if (keyPath is null)
        {
            return;
        }

        string pem;
        using (var key = certificate.GetECDsaPrivateKey() as AsymmetricAlgorithm ?? certificate.GetRSAPrivateKey()
            ?? throw new ArgumentException("The certificate has no ECDSA or RSA private key.", nameof(certificate)))
        {
            pem = key.ExportPkcs8PrivateKeyPem();
        }

        if (OperatingSystem.IsWindows())
        {
            File.WriteAllText(keyPath, pem + "\n");
            return;
        }

        using var stream = new FileStream(keyPath, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        using var writer = new StreamWriter(stream);
        writer.Write(pem + "\n");
    }

    /// <summary>
    /// Writes a complete throw-away set into <paramref name="directory"/>: <c>ca.crt</c> (and
    /// <c>ca.key</c>), <c>server.crt/.key</c> (the client port), <c>peer.crt/.key</c> (between
    /// members) and <c>client.crt/.key</c> with common name <paramref name="clientCommonName"/>
    /// (etcdctl's <c>--cert/--key</c>). Every certificate names localhost, 127.0.0.1 and ::1.
    /// </summary>
    public static TlsFileSet WriteSet(string directory, string clientCommonName = "root", TimeSpan? validity = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var lifetime = validity ?? TimeSpan.FromDays(30);
        Directory.CreateDirectory(directory);
        var set = new TlsFileSet(directory);
        using var ca = Create("arbiter throw-away CA", lifetime);
        WritePem(ca.Certificate, set.CaFile, set.CaKeyFile);
        using (var server = ca.IssueLocal("arbiter-server", lifetime))
        {
            WritePem(server, set.ServerCertFile, set.ServerKeyFile);
        }

        using (var peer = ca.IssueLocal("arbiter-peer", lifetime))
        {
            WritePem(peer, set.PeerCertFile, set.PeerKeyFile);
        }

        using (var client = ca.IssueLocal(clientCommonName, lifetime))
        {
            WritePem(client, set.ClientCertFile, set.ClientKeyFile);
        }

        return set;
    }

    /// <inheritdoc />
    public void Dispose() => Certificate.Dispose();
}

/// <summary>Where <see cref="ThrowawayCertificateAuthority.WriteSet"/> puts each file.</summary>
/// <param name="Directory">The directory holding them.</param>
public sealed record TlsFileSet(string Directory)
{
    /// <summary>The CA certificate: <c>--trusted-ca-file</c>, <c>--peer-trusted-ca-file</c>, etcdctl's <c>--cacert</c>.</summary>
    public string CaFile => Path.Combine(Directory, "ca.crt");

    /// <summary>The CA's private key (to issue more certificates; keep it private).</summary>
    public string CaKeyFile => Path.Combine(Directory, "ca.key");

    /// <summary><c>--cert-file</c>.</summary>
    public string ServerCertFile => Path.Combine(Directory, "server.crt");

    /// <summary><c>--key-file</c>.</summary>
    public string ServerKeyFile => Path.Combine(Directory, "server.key");

    /// <summary><c>--peer-cert-file</c>.</summary>
    public string PeerCertFile => Path.Combine(Directory, "peer.crt");

    /// <summary><c>--peer-key-file</c>.</summary>
    public string PeerKeyFile => Path.Combine(Directory, "peer.key");

    /// <summary>etcdctl's <c>--cert</c>.</summary>
    public string ClientCertFile => Path.Combine(Directory, "client.crt");

    /// <summary>etcdctl's <c>--key</c>.</summary>
    public string ClientKeyFile => Path.Combine(Directory, "client.key");
}
