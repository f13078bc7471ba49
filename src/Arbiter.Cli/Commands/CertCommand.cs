using System.CommandLine;
using Arbiter.Node.Security;

namespace Arbiter.Cli.Commands;

/// <summary><c>arbiter cert</c>: writes a throw-away CA with server, peer and client certificates, for trying TLS out.</summary>
internal static class CertCommand
{
    public static Command Create()
    {
        var directory = new Option<string>("--dir") { Description = "Directory to write ca.crt, server.*, peer.*, client.* into.", DefaultValueFactory = _ => "tls" };
        var clientName = new Option<string>("--client-cn") { Description = "Common name of the client certificate (the user under --client-cert-auth).", DefaultValueFactory = _ => "root" };
        var days = new Option<int>("--days") { Description = "Validity, in days.", DefaultValueFactory = _ => 30 };
        var command = new Command("cert", "Write a throw-away CA and certificates (localhost, 127.0.0.1, ::1) for trying TLS out; not for production.")
        {
            directory, clientName, days,
        };
        command.SetAction(result =>
        {
            if (result.GetValue(days) is < 1 or > 3650)
            {
                Console.Error.WriteLine("error: --days must be between 1 and 3650");
                return 2;
            }

            var set = ThrowawayCertificateAuthority.WriteSet(Path.GetFullPath(result.GetValue(directory)!), result.GetValue(clientName)!, TimeSpan.FromDays(result.GetValue(days)));
            Console.WriteLine($"wrote {set.Directory}: ca.crt ca.key server.crt server.key peer.crt peer.key client.crt client.key");
            Console.WriteLine($"serve:   --cert-file {set.ServerCertFile} --key-file {set.ServerKeyFile} --trusted-ca-file {set.CaFile} --client-cert-auth --listen-client-urls https://127.0.0.1:2379");
            Console.WriteLine($"etcdctl: --endpoints=https://127.0.0.1:2379 --cacert={set.CaFile} --cert={set.ClientCertFile} --key={set.ClientKeyFile}");
            return 0;
        });
        return command;
    }
}
