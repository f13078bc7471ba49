namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>A real single-member etcd (/usr/bin/etcd) on loopback ports.</summary>
public sealed class EtcdProcess(string name = "etcd-compat") : ServerProcess(name)
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
    ];
}
