using System.Diagnostics;
using System.Globalization;
using Arbiter.Verification.Cluster;

namespace Arbiter.Verification.Nemeses;

/// <summary>
/// Network partitions between harness members with iptables. Loopback connections all leave from
/// 127.0.0.1, so a rule names the receiver by its address and the sender by the uid its process runs
/// as (<c>-m owner --uid-owner</c>; members run as separate users). Packets of sockets already
/// closed have no owner: those to a cut-off address are dropped too (stale retransmissions). The
/// harness's own client connections (another uid) reach every member. Every rule carries a comment
/// tag naming this process; <see cref="HealAll"/> removes exactly this partitioner's rules, and rules
/// tagged by a harness process that no longer exists are removed on first use.
/// </summary>
public sealed class IptablesPartitioner
{
    private const string TagPrefix = "arbiter-verify-";
    private static int _leftoversRemoved;
    private readonly List<string[]> _rules = [];
    private readonly string _tag = $"{TagPrefix}{Environment.ProcessId}-{Guid.NewGuid():N}"[..40];

    /// <summary>Why partitions cannot be made here (not root, no iptables, no setpriv), or null.</summary>
    public static string? UnavailableReason()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "needs Linux";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "needs root (iptables, members under their own uid)";
        }

        try
        {
            return Run(["-w", "10", "-S", "OUTPUT"]).ExitCode == 0 && RunFile("setpriv", ["--version"]).ExitCode == 0 ? null : "iptables or setpriv does not work";
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return $"iptables or setpriv not installed: {e.Message}";
        }
    }

    /// <summary>Whether any rule is in place.</summary>
    public bool IsActive
    {
        get
        {
            lock (_rules)
            {
                return _rules.Count > 0;
            }
        }
    }

    /// <summary>Cuts every pair in <paramref name="pairs"/> off from each other (both directions).</summary>
    public void Cut(IEnumerable<(MemberProcess A, MemberProcess B)> pairs)
    {
        RemoveLeftoversOnce();
        var cutOff = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (a, b) in pairs)
        {
            Drop(a, b);
            Drop(b, a);
            cutOff.Add(a.Address);
            cutOff.Add(b.Address);
        }

        foreach (var address in cutOff)
        {
            Add(["OUTPUT", "-p", "tcp", "-m", "owner", "!", "--socket-exists", "-d", address, "-m", "comment", "--comment", _tag, "-j", "DROP"]);
        }
    }

    private void Drop(MemberProcess from, MemberProcess to)
    {
        var uid = from.Uid ?? throw new InvalidOperationException($"{from.Name} runs as the harness's own user; partitions need members under their own uids");
        Add(["OUTPUT", "-p", "tcp", "-m", "owner", "--uid-owner", uid.ToString(CultureInfo.InvariantCulture), "-d", to.Address, "-m", "comment", "--comment", _tag, "-j", "DROP"]);
    }

    private void Add(string[] rule)
    {
        var (exitCode, _, error) = Run(["-w", "10", "-I", rule[0], "1", .. rule[1..]]);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"iptables refused {string.Join(' ', rule)}: {error.Trim()}");
        }

        lock (_rules)
        {
            _rules.Add(rule);
        }
    }

    /// <summary>Removes every rule this partitioner added.</summary>
    public void HealAll()
    {
        lock (_rules)
        {
            foreach (var rule in _rules)
            {
                Run(["-w", "10", "-D", .. rule]);
            }

            _rules.Clear();
        }
    }

    private static void RemoveLeftoversOnce()
    {
        if (Interlocked.Exchange(ref _leftoversRemoved, 1) == 1)
        {
            return;
        }

        var (exitCode, listing, _) = Run(["-w", "10", "-S", "OUTPUT"]);
        if (exitCode != 0)
        {
            return;
        }

        foreach (var line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var words = line.Split(' ');
            var at = Array.IndexOf(words, "--comment") + 1;
            if (words is not ["-A", ..] || at <= 0 || at >= words.Length || !words[at].StartsWith(TagPrefix, StringComparison.Ordinal))
            {
                continue;
            }

            var owner = words[at][TagPrefix.Length..].Split('-')[0];
            if (int.TryParse(owner, out var pid) && !Directory.Exists($"/proc/{pid}"))
            {
                Run(["-w", "10", "-D", .. words[1..]]);
            }
        }
    }

    private static (int ExitCode, string Output, string Error) Run(string[] arguments) => RunFile("iptables", arguments);

    private static (int ExitCode, string Output, string Error) RunFile(string file, string[] arguments)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(30_000))
        {
            process.Kill();
            return (-1, string.Empty, $"{file} did not finish within 30 s");
        }

        return (process.ExitCode, output.Result, error.Result);
    }
}
