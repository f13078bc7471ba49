namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>A real single-member etcd (/usr/bin/etcd) on loopback ports.</summary>
/// <param name="name">Member name (and data directory prefix).</param>
/// <param name="extraArguments">Flags appended to the usual ones.</param>
public sealed class EtcdProcess(string name = "etcd-compat", IReadOnlyList<string>? extraArguments = null) : ServerProcess(name)
{
    public const string BinaryPath = "/usr/bin/etcd";

    protected override string FileName => BinaryPath;

    protected override IEnumerable<string> Arguments(bool isRestart) =>
    [
        "--name", Name,
        "--data-dir", DataDir,
        "--listen-client-urls", Endpoint,
        "--advertise-client-urls", Endpoint,
        "--listen-peer-urls", PeerUrl,
        "--initial-advertise-peer-urls", PeerUrl,
        "--initial-cluster", $"{Name}={PeerUrl}",
        "--initial-cluster-state", "new",
        "--initial-cluster-token", $"compat-{Path.GetFileName(DataDir)}",
        "--logger", "zap",
        "--log-outputs", "stderr",
        .. extraArguments ?? [],
    ];
}
