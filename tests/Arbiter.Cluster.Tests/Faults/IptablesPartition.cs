using System.Collections.Concurrent;
using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Cluster.Tests.Faults;

/// <summary>
/// A network partition between groups of cluster members, made by dropping their packets with
/// iptables. Every member talks from 127.0.0.1, so rules cannot tell members apart by address:
/// each member runs under its own uid (<see cref="ClusterSettings.RunMembersAsSeparateUsers"/>)
/// and OUTPUT rules match the sending socket's owner (<c>-m owner --uid-owner</c>; packets of
/// sockets closed meanwhile have no owner and are dropped as well) and the destination ports
/// (peer port for Raft, client port for forwarded proposals and ReadIndex) of the members on the
/// other side. The test process (another uid) still reaches every member.
/// Disposing heals. Rules carry a comment tag with the test process id, so rules left behind by
/// a test process that died are removed by the next one.
/// </summary>
public sealed class IptablesPartition : IDisposable
{
    private const string TagPrefix = "arbiter-test-";
    private const int MultiportPortsMax = 15;
    private static readonly Lazy<string?> Unavailable = new(Probe);
    private static readonly ConcurrentDictionary<IptablesPartition, bool> Active = new();
    private static int _leftoversRemoved;
    private readonly List<(string Table, string[] Rule)> _rules = [];

    static IptablesPartition()
    {
        // A test run that ends abruptly (but not by SIGKILL) still removes its rules.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var partition in Active.Keys)
            {
                try
                {
                    partition.Heal();
                }
                catch (InvalidOperationException)
                {
                    // Leftovers are removed by the next test process.
                }
            }
        };
    }

    private IptablesPartition(string tag) => Tag = tag;

    /// <summary>Why partitions cannot be made on this machine (not root, no iptables, no owner match, no setpriv), or null if they can.</summary>
    public static string? UnavailableReason => Unavailable.Value;

    /// <summary>The comment every rule of this partition carries.</summary>
    public string Tag { get; }

    /// <summary>True until <see cref="Heal"/>.</summary>
    public bool IsActive => Active.ContainsKey(this);

    /// <summary>Cuts <paramref name="isolated"/> off from every member in <paramref name="others"/>, both directions.</summary>
    public static IptablesPartition Isolate(ArbiterClusterMember isolated, IEnumerable<ArbiterClusterMember> others)
        => Split([isolated], others.ToList());

    /// <summary>Drops every packet a member of one side sends to a member of the other side.</summary>
    public static IptablesPartition Split(IReadOnlyCollection<ArbiterClusterMember> sideA, IReadOnlyCollection<ArbiterClusterMember> sideB)
    {
        if (UnavailableReason is { } reason)
        {
            throw new InvalidOperationException($"iptables partitions unavailable: {reason}");
        }

        RemoveLeftoversOnce();
        var partition = new IptablesPartition($"{TagPrefix}{Environment.ProcessId}-{Guid.NewGuid():N}");
        Active[partition] = true;
        try
        {
            partition.DropFromTo(sideA, sideB);
            partition.DropFromTo(sideB, sideA);
        }
        catch
        {
            partition.Heal();
            throw;
        }

        return partition;
    }

    /// <summary>Removes this partition's rules (idempotent); packets flow again.</summary>
    public void Heal()
    {
        lock (_rules)
        {
            var failures = new List<string>();
            foreach (var (table, rule) in _rules)
            {
                var (exitCode, _, error) = Run("iptables", ["-w", "10", "-t", table, "-D", .. rule]);
                if (exitCode != 0)
                {
                    failures.Add(error.Trim());
                }
            }

            _rules.Clear();
            Active.TryRemove(this, out _);
            if (failures.Count > 0)
            {
                throw new InvalidOperationException($"could not remove iptables rules tagged {Tag}: {string.Join("; ", failures)}");
            }
        }
    }

    public void Dispose() => Heal();

    public override string ToString()
    {
        lock (_rules)
        {
            return string.Join("\n", _rules.Select(r => $"iptables -t {r.Table} -A {string.Join(' ', r.Rule)}"));
        }
    }

    private void DropFromTo(IEnumerable<ArbiterClusterMember> senders, IReadOnlyCollection<ArbiterClusterMember> receivers)
    {
        var ports = receivers.SelectMany(m => new[] { m.PeerPort, m.ClientPort }).ToList();
        foreach (var chunk in ports.Chunk(MultiportPortsMax))
        {
            foreach (var sender in senders)
            {
                AddRule("filter", ["OUTPUT", "-p", "tcp", .. Owner(sender), .. Ports(chunk), .. Tagged(), "-j", "DROP"]);
            }

            // Owner matching alone leaks: when a process closes a socket (DotNext does so when a
            // request times out), the kernel keeps retransmitting its unacknowledged data from the
            // orphaned socket, which no longer has an owner — so a Raft request written during the
            // partition reached the majority seconds later and an isolated leader's entry was
            // committed. Packets from no socket at all are dropped too (for every member port,
            // whoever sent them: stale retransmissions only).
            AddRule("filter", ["OUTPUT", "-p", "tcp", "-m", "owner", "!", "--socket-exists", .. Ports(chunk), .. Tagged(), "-j", "DROP"]);
        }
    }

    private void AddRule(string table, string[] rule)
    {
        // Inserted first in the chain, so that no ACCEPT rule added by anyone else lets the packets by.
        var (exitCode, _, error) = Run("iptables", ["-w", "10", "-t", table, "-I", rule[0], "1", .. rule[1..]]);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"iptables refused a rule (-t {table} {string.Join(' ', rule)}): {error.Trim()}");
        }

        lock (_rules)
        {
            _rules.Add((table, rule));
        }
    }

    private static int UidOf(ArbiterClusterMember member) => member.Uid ?? throw new InvalidOperationException(
        $"{member.Name} runs as the test's own user; start the cluster with {nameof(ClusterSettings.RunMembersAsSeparateUsers)}");

    private static string[] Owner(ArbiterClusterMember member) => ["-m", "owner", "--uid-owner", Text(UidOf(member))];

    private static string[] Ports(IEnumerable<int> ports) => ["-m", "multiport", "--dports", string.Join(',', ports.Select(Text))];

    private string[] Tagged() => ["-m", "comment", "--comment", Tag];

    private static string Text(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Rules tagged by a test process that is gone (killed mid-test) would keep uids cut off: remove them.</summary>
    private static void RemoveLeftoversOnce()
    {
        if (Interlocked.Exchange(ref _leftoversRemoved, 1) == 1)
        {
            return;
        }

        foreach (var table in new[] { "filter" })
        {
            var (exitCode, listing, _) = Run("iptables", ["-w", "10", "-t", table, "-S", "OUTPUT"]);
            if (exitCode != 0)
            {
                continue;
            }

            foreach (var line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var words = line.Split(' ');
                var tagAt = Array.IndexOf(words, "--comment") + 1;
                if (words is not ["-A", ..] || tagAt <= 0 || tagAt >= words.Length || !words[tagAt].StartsWith(TagPrefix, StringComparison.Ordinal))
                {
                    continue;
                }

                var owner = words[tagAt][TagPrefix.Length..].Split('-')[0];
                if (int.TryParse(owner, out var pid) && !Directory.Exists($"/proc/{pid}"))
                {
                    Run("iptables", ["-w", "10", "-t", table, "-D", .. words[1..]]);
                }
            }
        }
    }

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "needs Linux (iptables)";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "needs root (iptables rules, members under their own uid via setpriv)";
        }

        try
        {
            if (Run("setpriv", ["--version"]) is { ExitCode: not 0 } setpriv)
            {
                return $"setpriv does not run: {setpriv.Error.Trim()}";
            }

            // The exact match modules the partitions use, on a uid nothing runs as.
            string[] probe = ["OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", "39999", "-m", "multiport", "--dports", "9,10",
                "-m", "comment", "--comment", $"{TagPrefix}{Environment.ProcessId}-probe", "-j", "DROP"];
            var (exitCode, _, error) = Run("iptables", ["-w", "10", "-A", .. probe]);
            if (exitCode != 0)
            {
                return $"iptables cannot add an owner-match rule (apt-get install -y iptables; needs NET_ADMIN): {error.Trim()}";
            }

            Run("iptables", ["-w", "10", "-D", .. probe]);
            string[] orphans = ["OUTPUT", "-p", "tcp", "-m", "owner", "!", "--socket-exists", "-m", "multiport", "--dports", "9,10",
                "-m", "comment", "--comment", $"{TagPrefix}{Environment.ProcessId}-probe", "-j", "DROP"];
            (exitCode, _, error) = Run("iptables", ["-w", "10", "-A", .. orphans]);
            if (exitCode != 0)
            {
                return $"iptables cannot match packets without a socket (owner --socket-exists): {error.Trim()}";
            }

            Run("iptables", ["-w", "10", "-D", .. orphans]);
            return null;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"iptables or setpriv not installed (apt-get install -y iptables util-linux): {e.Message}";
        }
    }

    private static (int ExitCode, string Output, string Error) Run(string fileName, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {fileName}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(30_000))
        {
            process.Kill();
            return (-1, string.Empty, $"{fileName} did not finish within 30 s");
        }

        return (process.ExitCode, output.Result, error.Result);
    }
}

/// <summary>A fact that needs <see cref="IptablesPartition"/>: reported as skipped, with the reason, where partitions cannot be made.</summary>
public sealed class IptablesFactAttribute : FactAttribute
{
    public IptablesFactAttribute()
    {
        if (IptablesPartition.UnavailableReason is { } reason)
        {
            Skip = $"network partition tests skipped: {reason}";
        }
    }
}
