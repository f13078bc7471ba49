using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Arbiter.Protocol.Security;

/// <summary>
/// Trust in a remote certificate that chains to the configured CAs alone (etcd's
/// <c>--trusted-ca-file</c>), shared by the client and the member so both sides check alike.
/// </summary>
public static class CertificateTrust
{
    /// <summary>True when <paramref name="remote"/> chains to one of <paramref name="roots"/>, which alone are trusted.</summary>
    public static bool ChainsTo(X509Certificate2 remote, X509Certificate2Collection roots, X509Chain? presented = null)
    {
        ArgumentNullException.ThrowIfNull(remote);
        ArgumentNullException.ThrowIfNull(roots);
        if (roots.Count == 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        try
        {
            return chain.Build(remote);
        }
        finally
        {
            foreach (var element in chain.ChainElements)
            {
                if (!ReferenceEquals(element.Certificate, remote))
                {
                    element.Certificate.Dispose();
                }
            }
        }
    }

    /// <summary>
    /// A validation callback for the client side of a connection: the server's certificate must chain
    /// to <paramref name="roots"/>; with <paramref name="checkName"/>, its name must also match the host
    /// dialled (as Go's and .NET's clients check).
    /// </summary>
    public static RemoteCertificateValidationCallback ServerValidation(X509Certificate2Collection roots, bool checkName) =>
        (_, certificate, chain, errors) =>
        {
            if (certificate is null || (checkName && errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch)))
            {
                return false;
            }

            if (certificate is X509Certificate2 remote)
            {
                return ChainsTo(remote, roots, chain);
            }

            using var copy = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return ChainsTo(copy, roots, chain);
        };
}
