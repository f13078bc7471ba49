using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Arbiter.Node.Security;

namespace Arbiter.Cli.Commands;

/// <summary>
/// <c>arbiter local-cluster</c>: a Raft cluster on this machine for trying things out, each member
/// a child <c>arbiter serve</c> process (so one can be killed to watch a failover). Ports follow
/// etcd's Procfile: clients 2379, 22379, 32379…, peers 2380, 22380, 32380….
/// </summary>
internal static class LocalClusterCommand
{
    public static Command Create()
    {
        var size = new Option<int>("--size") { Description = "Number of members (3 or 5 are typical).", DefaultValueFactory = _ => 3 };
        var dataDir = new Option<string>("--data-dir") { Description = "Parent directory of the members' data directories.", DefaultValueFactory = _ => Path.Combine("data", "local-cluster") };
        var host = new Option<string>("--host") { Description = "Loopback or local address to listen on.", DefaultValueFactory = _ => "127.0.0.1" };
        var tls = new Option<bool>("--tls") { Description = "Generate a throw-away CA and certificates into <data-dir>/tls and run with client and peer mutual TLS." };
        var command = new Command("local-cluster", "Start a local Raft cluster (child `arbiter serve` processes) for trying it out.")
        {
            size, dataDir, host, tls,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            var memberCount = result.GetValue(size);
            if (memberCount is < 1 or > 9)
            {
                Console.Error.WriteLine("error: --size must be between 1 and 9");
                return 2;
            }

            return await RunAsync(memberCount, Path.GetFullPath(result.GetValue(dataDir)!), result.GetValue(host)!, result.GetValue(tls), cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(int memberCount, string dataDirectory, string host, bool tls, CancellationToken cancellationToken)
    {
        var scheme = tls ? "https" : "http";
        var members = Enumerable.Range(1, memberCount).Select(i => new
        {
            Name = $"m{i}",
            ClientUrl = string.Create(CultureInfo.InvariantCulture, $"{scheme}://{host}:{PortFor(i, 2379)}"),
            PeerUrl = string.Create(CultureInfo.InvariantCulture, $"{scheme}://{host}:{PortFor(i, 2380)}"),
        }).ToList();
        TlsFileSet? certificates = null;
        if (tls)
        {
            // Kept across runs (the members' data stays too); a new set only when there is none.
            var directory = Path.Combine(dataDirectory, "tls");
            certificates = new TlsFileSet(directory);
            if (!File.Exists(certificates.CaFile))
            {
                certificates = ThrowawayCertificateAuthority.WriteSet(directory, "root");
                Console.WriteLine($"wrote a throw-away CA and server, peer and client (CN=root) certificates to {directory}");
            }
        }

        var initialCluster = string.Join(",", members.Select(m => $"{m.Name}={m.PeerUrl}"));
        var processes = new List<Process>();
        using var stopping = new CancellationTokenSource();
        try
        {
            foreach (var member in members)
            {
                var start = SelfStartInfo();
                foreach (var argument in new[]
                {
                    "serve", "--name", member.Name, "--data-dir", Path.Combine(dataDirectory, member.Name),
                    "--listen-client-urls", member.ClientUrl, "--advertise-client-urls", member.ClientUrl,
                    "--listen-peer-urls", member.PeerUrl, "--initial-advertise-peer-urls", member.PeerUrl,
                    "--initial-cluster", initialCluster, "--initial-cluster-state", "new",
                })
                {
                    start.ArgumentList.Add(argument);
                }

                if (certificates is not null)
                {
                    foreach (var argument in new[]
                    {
                        "--cert-file", certificates.ServerCertFile, "--key-file", certificates.ServerKeyFile,
                        "--trusted-ca-file", certificates.CaFile, "--client-cert-auth",
                        "--peer-cert-file", certificates.PeerCertFile, "--peer-key-file", certificates.PeerKeyFile,
                        "--peer-trusted-ca-file", certificates.CaFile, "--peer-client-cert-auth",
                    })
                    {
                        start.ArgumentList.Add(argument);
                    }
                }

                var process = Process.Start(start) ?? throw new InvalidOperationException("could not start a member");
                processes.Add(process);
                Prefix(process, member.Name);
                ReportExit(process, member.Name, stopping);
                Console.WriteLine($"started {member.Name} (pid {process.Id}): clients {member.ClientUrl}, peers {member.PeerUrl}");
            }

            Console.WriteLine();
            var credentials = certificates is null ? string.Empty : $" --cacert={certificates.CaFile} --cert={certificates.ClientCertFile} --key={certificates.ClientKeyFile}";
            Console.WriteLine($"Try: etcdctl --endpoints={string.Join(",", members.Select(m => m.ClientUrl))}{credentials} endpoint status -w table");
            Console.WriteLine("Kill a member (kill -9 <pid>) to watch a failover; Ctrl-C stops them all.");
            await Task.WhenAny(Task.Delay(Timeout.Infinite, cancellationToken), Task.WhenAll(processes.Select(p => p.WaitForExitAsync(CancellationToken.None)))).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            await stopping.CancelAsync().ConfigureAwait(false);
            foreach (var process in processes.Where(p => !p.HasExited))
            {
                Terminate(process);
            }

            foreach (var process in processes)
            {
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                process.Dispose();
            }
        }

        return 0;
    }

    /// <summary>Says when a member exits on its own or is killed (not when local-cluster stops them all).</summary>
    private static void ReportExit(Process process, string name, CancellationTokenSource stopping)
    {
        var pid = process.Id;
        _ = process.WaitForExitAsync(CancellationToken.None).ContinueWith(
            exited =>
            {
                if (!stopping.IsCancellationRequested)
                {
                    var code = process.ExitCode;
                    var how = code > 128 ? $"killed by signal {code - 128}" : $"exit code {code}";
                    Console.WriteLine($"{name} (pid {pid}) exited: {how}; the others keep running");
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>SIGTERM through /bin/kill (no P/Invoke): the member shuts down cleanly.</summary>
    private static void Terminate(Process process)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-s", "TERM", process.Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
        kill?.WaitForExit(5000);
    }

    /// <summary>Member 1 gets the base port; member i gets i·10000 + base (etcd's Procfile layout).</summary>
    private static int PortFor(int member, int basePort) => member == 1 ? basePort : (member * 10_000) + basePort;

    /// <summary>This program again: <c>dotnet arbiter.dll</c> or the apphost.</summary>
    private static ProcessStartInfo SelfStartInfo()
    {
        var processPath = Environment.ProcessPath ?? "dotnet";
        var start = new ProcessStartInfo(processPath) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(processPath) == "dotnet")
        {
            start.ArgumentList.Add(typeof(LocalClusterCommand).Assembly.Location);
        }

        return start;
    }

    private static void Prefix(Process process, string name)
    {
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.WriteLine($"{name} | {e.Data}");
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"{name} | {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }
}
