using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;

namespace Arbiter.Bench;

/// <summary>
/// The "connections" of a run: one <see cref="GrpcChannel"/> per connection, each pinned to a single
/// HTTP/2 connection, spread round-robin over the endpoints. Clients share them round-robin.
/// </summary>
public sealed class EtcdConnections : IDisposable
{
    private readonly GrpcChannel[] _channels;

    /// <summary>
    /// Opens <paramref name="count"/> channels over <paramref name="endpoints"/>; https endpoints
    /// check the server against <paramref name="caFile"/> and show <paramref name="certFile"/>/<paramref name="keyFile"/>.
    /// </summary>
    public EtcdConnections(IReadOnlyList<string> endpoints, int count, string? caFile = null, string? certFile = null, string? keyFile = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (endpoints.Count == 0)
        {
            throw new ArgumentException("at least one endpoint is needed", nameof(endpoints));
        }

        _channels = new GrpcChannel[count];
        for (var i = 0; i < count; i++)
        {
            var handler = new SocketsHttpHandler
            {
                // One channel = exactly one TCP connection, so --connections means what it says.
                EnableMultipleHttp2Connections = false,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                ConnectTimeout = TimeSpan.FromSeconds(5),
            };
            if (caFile is not null || certFile is not null)
            {
                handler.SslOptions = TlsOptions(caFile, certFile, keyFile);
            }

            _channels[i] = GrpcChannel.ForAddress(endpoints[i % endpoints.Count], new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                MaxReceiveMessageSize = null,
                MaxSendMessageSize = null,
            });
        }
    }

    private static System.Net.Security.SslClientAuthenticationOptions TlsOptions(string? caFile, string? certFile, string? keyFile)
    {
        var certificate = certFile is null ? null : X509Certificate2.CreateFromPemFile(certFile, keyFile);
        X509Certificate2Collection? roots = null;
        if (caFile is not null)
        {
            roots = [];
            roots.ImportFromPemFile(caFile);
        }

        return new System.Net.Security.SslClientAuthenticationOptions
        {
            ClientCertificates = certificate is null ? null : [certificate],
            LocalCertificateSelectionCallback = certificate is null ? null : (_, _, _, _, _) => certificate,
            RemoteCertificateValidationCallback = roots is null ? null : (_, remote, chain, errors) =>
            {
                if (remote is null || errors.HasFlag(System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch))
                {
                    return false;
                }

                using var build = new X509Chain();
                build.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                build.ChainPolicy.CustomTrustStore.AddRange(roots);
                build.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return build.Build(remote as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(remote.GetRawCertData()));
            },
        };
    }

    /// <summary>Number of channels.</summary>
    public int Count => _channels.Length;

    /// <summary>The channel client <paramref name="clientIndex"/> uses.</summary>
    public GrpcChannel For(int clientIndex) => _channels[clientIndex % _channels.Length];

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }
}
