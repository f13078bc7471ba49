using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// Mutual TLS with the client certificate's common name as the user (etcd's rule under
/// <c>--client-cert-auth</c> with auth on), differentially: etcdctl with <c>--cacert/--cert/--key</c>
/// and no <c>--user</c>, the same script against a fresh real etcd 3.4 and a fresh Arbiter (a single
/// node, then a 3-member cluster with TLS between members, reached through a follower), every line
/// of output compared. Certificates are made at run time from one throw-away CA.
/// </summary>
[Trait("Target", "Differential")]
public sealed class ClientCertificateAuthTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Steps run over TLS with the client certificate named by the first argument (<c>@root</c>,
    /// <c>@dave</c>: a user with READWRITE on <c>/cert/</c>, <c>@mallory</c>: a name no user has), or
    /// on the plain client URL with no certificate (<c>@plain</c>).
    /// </summary>
    internal static readonly (string[] Args, string? Stdin)[] CertificateScript =
    [
        (["@root", "user", "add", "root:pw"], null),
        (["@root", "user", "grant-role", "root", "root"], null),
        (["@root", "role", "add", "cert-app"], null),
        (["@root", "role", "grant-permission", "cert-app", "readwrite", "/cert/", "--prefix"], null),
        (["@root", "user", "add", "dave:dpw"], null),
        (["@root", "user", "grant-role", "dave", "cert-app"], null),
        (["@root", "put", "/outside", "x"], null),
        (["@dave", "put", "/cert/before", "v"], null),
        (["@mallory", "put", "/cert/before-m", "v"], null),
        (["@root", "auth", "enable"], null),
        (["@dave", "put", "/cert/k", "v"], null),
        (["@dave", "get", "/cert/k"], null),
        (["@dave", "get", "/cert/", "--prefix"], null),
        (["@dave", "put", "/outside", "y"], null),
        (["@dave", "get", "/outside"], null),
        (["@dave", "get", "/", "--prefix", "--keys-only"], null),
        (["@dave", "del", "/outside"], null),
        (["@dave", "del", "/cert/before"], null),
        (["@dave", "txn", "--interactive=false"], "value(\"/cert/k\") = \"v\"\n\nput /cert/t yes\n\nput /cert/t no\n\n"),
        (["@dave", "txn", "--interactive=false"], "value(\"/cert/k\") = \"v\"\n\nput /outside t\n\n\n"),
        (["@dave", "user", "list"], null),
        (["@dave", "user", "get", "dave"], null),
        (["@dave", "user", "get", "root"], null),
        (["@dave", "role", "get", "cert-app"], null),
        (["@dave", "role", "list"], null),
        (["@dave", "user", "add", "eve:x"], null),
        (["@dave", "auth", "disable"], null),
        (["@dave", "--user", "root:pw", "get", "/outside"], null),
        (["@dave", "--user", "dave:wrong", "get", "/cert/k"], null),
        (["@dave", "--user", "nosuch:pw", "get", "/cert/k"], null),
        (["@mallory", "get", "/cert/k"], null),
        (["@mallory", "put", "/cert/m", "v"], null),
        (["@mallory", "user", "get", "mallory"], null),
        (["@mallory", "user", "list"], null),
        (["@plain", "get", "/cert/k"], null),
        (["@plain", "put", "/cert/k", "plain"], null),
        (["@plain", "--user", "dave:dpw", "get", "/cert/k"], null),
        (["@root", "get", "/outside"], null),
        (["@root", "put", "/outside", "z"], null),
        (["@root", "get", "/", "--prefix"], null),
        (["@root", "user", "list"], null),
        (["@root", "role", "list"], null),
        (["@root", "user", "add", "erin:epw"], null),
        (["@root", "role", "grant-permission", "cert-app", "read", "/shared/", "--prefix"], null),
        (["@root", "user", "get", "dave", "--detail"], null),
        (["@root", "role", "get", "cert-app"], null),
        (["@dave", "get", "/shared/x"], null),
        (["@dave", "put", "/shared/x", "v"], null),
        (["@root", "user", "delete", "root"], null),
        (["@root", "role", "revoke-permission", "cert-app", "/cert/", "/cert0"], null),
        (["@dave", "put", "/cert/k", "v2"], null),
        (["@dave", "get", "/cert/k"], null),
        (["@root", "role", "grant-permission", "cert-app", "readwrite", "/cert/", "--prefix"], null),
        (["@root", "user", "revoke-role", "dave", "cert-app"], null),
        (["@dave", "get", "/cert/k"], null),
        (["@root", "auth", "disable"], null),
        (["@dave", "put", "/outside", "after"], null),
        (["@mallory", "get", "/outside"], null),
        (["@plain", "get", "/outside"], null),
    ];

    [Fact]
    public async Task CertificateCommonNameIsTheUserOnASingleNodeAsOnEtcd()
    {
        using var certificates = new TlsCertificates();
        await using var etcd = await TlsServerProcess.StartEtcdAsync(certificates.Set);
        await using var arbiter = await TlsServerProcess.StartArbiterAsync(certificates.Set, "--bcrypt-cost", "4");

        var expected = await RunCertificateScriptAsync(certificates, etcd.Endpoint, etcd.TlsEndpoint);
        var actual = await RunCertificateScriptAsync(certificates, arbiter.Endpoint, arbiter.TlsEndpoint);
        output.WriteLine(string.Join("\n", expected));
        EtcdctlTranscript.AssertSame(expected, actual, AuthDifferentialTests.Tail(arbiter.Log));
    }

    /// <summary>
    /// A 3-member Arbiter cluster with TLS between members (https peer URLs, <c>--peer-client-cert-auth</c>)
    /// and mutual TLS on the client port, every command through a follower (writes forwarded to the
    /// leader over TLS carry the certificate's user): first the etcdctl user/role/auth/--user script of
    /// <see cref="AuthDifferentialTests"/>, then the certificate script above; both transcripts equal a
    /// single etcd 3.4's with the same flags. A step the cluster answers with a leader-change error (the
    /// machine is loaded) is run again: see <see cref="EtcdctlTranscript.LeaderChangeErrors"/>.
    /// </summary>
    [Fact]
    public async Task UserRoleAuthAndCertificateScriptsOnAPeerTlsClusterAsOnEtcd()
    {
        using var certificates = new TlsCertificates();
        await using var etcd = await TlsServerProcess.StartEtcdAsync(certificates.Set);
        await using var cluster = await ArbiterCluster.StartAsync(3, new ClusterSettings
        {
            PeerTls = certificates.Set,
            ExtraArguments = ["--client-cert-auth", "--bcrypt-cost", "4"],
        });
        try
        {
            var follower = await cluster.FollowerAsync();
            output.WriteLine($"through follower {follower.Name} ({follower.Endpoint}, {follower.TlsEndpoint})");

            var expected = await EtcdctlTranscript.RunAsync(new EtcdctlRunner(etcd.Endpoint), AuthDifferentialTests.EtcdctlScript, CommandTimeout);
            var actual = await EtcdctlTranscript.RunAsync(new EtcdctlRunner(follower.Endpoint), AuthDifferentialTests.EtcdctlScript, CommandTimeout, retryLeaderChanges: true);
            output.WriteLine(string.Join("\n", expected));
            EtcdctlTranscript.AssertSame(expected, actual, AuthDifferentialTests.Tail(cluster.Logs));

            expected = await RunCertificateScriptAsync(certificates, etcd.Endpoint, etcd.TlsEndpoint);
            actual = await RunCertificateScriptAsync(certificates, follower.Endpoint, follower.TlsEndpoint, retryLeaderChanges: true);
            output.WriteLine(string.Join("\n", expected));
            EtcdctlTranscript.AssertSame(expected, actual, AuthDifferentialTests.Tail(cluster.Logs));
        }
        catch
        {
            output.WriteLine(cluster.Logs.Length > 20_000 ? cluster.Logs[^20_000..] : cluster.Logs);
            throw;
        }
    }

    private static Task<List<string>> RunCertificateScriptAsync(TlsCertificates certificates, string plainEndpoint, string tlsEndpoint, bool retryLeaderChanges = false)
    {
        var plain = new EtcdctlRunner(plainEndpoint);
        var tls = new EtcdctlRunner(tlsEndpoint);
        return EtcdctlTranscript.RunAsync(
            args => args[0] == "@plain"
                ? (plain, args[1..])
                : (tls, [.. TlsCertificates.EtcdctlFlags(certificates.Set, certificates.IssueClient(args[0][1..])), .. args[1..]]),
            CertificateScript,
            CommandTimeout,
            retryLeaderChanges);
    }
}
