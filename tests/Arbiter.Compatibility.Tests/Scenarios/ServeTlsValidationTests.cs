using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// <c>arbiter serve</c> with wrong TLS flags or files: one clear line naming the flag and a non-zero
/// exit (2, as serve's other flag errors), before anything listens.
/// </summary>
public sealed class ServeTlsValidationTests(TlsCertificatesFixture certificates, ITestOutputHelper output) : IClassFixture<TlsCertificatesFixture>
{
    public static TheoryData<string> Cases => ["missing cert file", "key of another certificate", "https URL without a certificate", "client-cert-auth without a CA", "CA file without a certificate", "https peer URL without a peer certificate", "peer certificate without the peer CA", "peer TLS without an https client URL"];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task WrongTlsSetupExitsWithOneClearLine(string problem)
    {
        var set = certificates.Value.Set;
        var foreign = certificates.Value.Foreign;
        var https = $"https://127.0.0.1:{PortAllocator.FreePort()}";
        var peer = $"https://127.0.0.1:{PortAllocator.FreePort()}";
        string[] peerFlags = ["--name", "m", "--initial-cluster", $"m={peer}", "--initial-advertise-peer-urls", peer];
        var (arguments, expected) = problem switch
        {
            "missing cert file" => (new[] { "--listen-client-urls", https, "--cert-file", "/nonexistent/server.crt", "--key-file", set.ServerKeyFile }, "--cert-file /nonexistent/server.crt: cannot read it"),
            "key of another certificate" => (["--listen-client-urls", https, "--cert-file", set.ServerCertFile, "--key-file", foreign.ServerKeyFile], "do not make a certificate with its key"),
            "https URL without a certificate" => (["--listen-client-urls", https], "an https URL needs --cert-file and --key-file"),
            "client-cert-auth without a CA" => (["--listen-client-urls", https, "--cert-file", set.ServerCertFile, "--key-file", set.ServerKeyFile, "--client-cert-auth"], "--client-cert-auth needs --trusted-ca-file"),
            "CA file without a certificate" => (["--listen-client-urls", https, "--cert-file", set.ServerCertFile, "--key-file", set.ServerKeyFile, "--trusted-ca-file", set.ClientKeyFile], "holds no PEM certificate"),
            "https peer URL without a peer certificate" => ([.. peerFlags], "an https peer URL needs --peer-cert-file"),
            "peer certificate without the peer CA" => (["--listen-client-urls", https, "--cert-file", set.ServerCertFile, "--key-file", set.ServerKeyFile, "--peer-cert-file", set.PeerCertFile, "--peer-key-file", set.PeerKeyFile, .. peerFlags], "--peer-cert-file needs --peer-trusted-ca-file"),
            "peer TLS without an https client URL" => (["--peer-cert-file", set.PeerCertFile, "--peer-key-file", set.PeerKeyFile, "--peer-trusted-ca-file", set.CaFile, .. peerFlags], "peer TLS needs an https client URL"),
            _ => throw new ArgumentOutOfRangeException(nameof(problem)),
        };

        var dataDir = Path.Combine(Path.GetTempPath(), $"arbiter-tls-validation-{Guid.NewGuid():N}");
        try
        {
            await using var process = ManagedProcess.Start("dotnet", [ArbiterProcess.DllPath, "serve", "--data-dir", dataDir, .. arguments], "arbiter-validation");
            Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"serve kept running with {problem}\n{process.Log}");
            var errors = process.Log.Split('\n').Where(l => l.StartsWith("[err] ", StringComparison.Ordinal)).Select(l => l[6..].TrimEnd('\r')).ToList();
            output.WriteLine($"{problem}: exit {process.ExitCode}; {string.Join(" | ", errors)}");
            Assert.Equal(2, process.ExitCode);
            var line = Assert.Single(errors);
            Assert.StartsWith("error: ", line, StringComparison.Ordinal);
            Assert.Contains(expected, line, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }
}

/// <summary>One throw-away certificate set per test class.</summary>
public sealed class TlsCertificatesFixture : IDisposable
{
    public TlsCertificates Value { get; } = new();

    public void Dispose() => Value.Dispose();
}
