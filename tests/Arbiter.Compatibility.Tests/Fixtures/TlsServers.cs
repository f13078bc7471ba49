using Arbiter.Node.Security;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>
/// Throw-away certificates generated at run time into a temp dir (never committed): a CA set
/// (<see cref="Set"/>: ca, server, peer, client with CN=root) and a second, unrelated CA set
/// (<see cref="Foreign"/>) whose certificates nobody trusts.
/// </summary>
public sealed class TlsCertificates : IDisposable
{
    public TlsCertificates()
    {
        Directory = Path.Combine(Path.GetTempPath(), $"arbiter-tls-{Guid.NewGuid():N}");
        Set = ThrowawayCertificateAuthority.WriteSet(Path.Combine(Directory, "trusted"), "root");
        Foreign = ThrowawayCertificateAuthority.WriteSet(Path.Combine(Directory, "foreign"), "root");
    }

    public string Directory { get; }

    public TlsFileSet Set { get; }

    public TlsFileSet Foreign { get; }

    /// <summary>etcdctl's flags for a client of <paramref name="set"/>.</summary>
    public static string[] EtcdctlFlags(TlsFileSet set) => [$"--cacert={set.CaFile}", $"--cert={set.ClientCertFile}", $"--key={set.ClientKeyFile}"];

    /// <summary>etcdctl's flags for <paramref name="client"/>, a client certificate issued by <paramref name="set"/>'s CA.</summary>
    public static string[] EtcdctlFlags(TlsFileSet set, ClientCertificate client) => [$"--cacert={set.CaFile}", $"--cert={client.CertFile}", $"--key={client.KeyFile}"];

    /// <summary>
    /// A client certificate with common name <paramref name="commonName"/> from <see cref="Set"/>'s CA
    /// (written once per name): under <c>--client-cert-auth</c> with auth on, the user it names.
    /// </summary>
    public ClientCertificate IssueClient(string commonName)
    {
        var directory = Path.Combine(Directory, "clients");
        System.IO.Directory.CreateDirectory(directory);
        var issued = new ClientCertificate(Path.Combine(directory, commonName + ".crt"), Path.Combine(directory, commonName + ".key"));
        if (!File.Exists(issued.CertFile))
        {
            using var ca = ThrowawayCertificateAuthority.Load(Set.CaFile, Set.CaKeyFile);
            using var certificate = ca.IssueLocal(commonName, TimeSpan.FromDays(1));
            ThrowawayCertificateAuthority.WritePem(certificate, issued.CertFile, issued.KeyFile);
        }

        return issued;
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a unique temp dir.
        }
    }
}

/// <summary>A client certificate and its key, as PEM files.</summary>
public sealed record ClientCertificate(string CertFile, string KeyFile);

/// <summary>
/// A server (Arbiter or etcd) serving its client port twice, as etcd allows: plain on
/// <see cref="ServerProcess.Endpoint"/> (readiness checks) and TLS with client-cert-auth on
/// <see cref="TlsEndpoint"/>, both with the same flags (<c>--cert-file --key-file
/// --trusted-ca-file --client-cert-auth</c>).
/// </summary>
public sealed class TlsServerProcess : ServerProcess
{
    private readonly bool _etcd;
    private readonly TlsFileSet _set;
    private readonly IReadOnlyList<string> _extraArguments;

    private TlsServerProcess(string name, bool etcd, TlsFileSet set, IReadOnlyList<string>? extraArguments = null)
        : base(name)
    {
        _etcd = etcd;
        _set = set;
        _extraArguments = extraArguments ?? [];
    }

    public int TlsPort { get; } = PortAllocator.FreePort();

    /// <summary>"https://127.0.0.1:port".</summary>
    public string TlsEndpoint => $"https://127.0.0.1:{TlsPort}";

    public bool IsEtcd => _etcd;

    /// <summary>Starts Arbiter with the TLS flags and <paramref name="extraArguments"/> (more <c>serve</c> flags).</summary>
    public static async Task<TlsServerProcess> StartArbiterAsync(TlsFileSet set, params string[] extraArguments)
    {
        var server = new TlsServerProcess("arbiter-tls", etcd: false, set, extraArguments);
        await server.StartAsync().ConfigureAwait(false);
        return server;
    }

    public static async Task<TlsServerProcess> StartEtcdAsync(TlsFileSet set)
    {
        var server = new TlsServerProcess("etcd-tls", etcd: true, set);
        await server.StartAsync().ConfigureAwait(false);
        return server;
    }

    protected override string FileName => _etcd ? EtcdProcess.BinaryPath : "dotnet";

    protected override IEnumerable<string> Arguments(bool isRestart)
    {
        string[] tls =
        [
            "--listen-client-urls", $"{Endpoint},{TlsEndpoint}",
            "--advertise-client-urls", $"{Endpoint},{TlsEndpoint}",
            "--cert-file", _set.ServerCertFile, "--key-file", _set.ServerKeyFile,
            "--trusted-ca-file", _set.CaFile, "--client-cert-auth",
        ];
        return _etcd
            ?
            [
                "--name", Name, "--data-dir", DataDir,
                "--listen-peer-urls", PeerUrl, "--initial-advertise-peer-urls", PeerUrl,
                "--initial-cluster", $"{Name}={PeerUrl}", "--initial-cluster-state", "new",
                "--initial-cluster-token", $"tls-{Path.GetFileName(DataDir)}",
                "--logger", "zap", "--log-outputs", "stderr",
                .. tls,
            ]
            : [ArbiterProcess.DllPath, "serve", "--name", Name, "--data-dir", DataDir, "--log-level", "info", .. tls, .. _extraArguments];
    }
}
