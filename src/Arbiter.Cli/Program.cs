using System.CommandLine;
using Arbiter.Cli.Commands;

var root = new RootCommand("Arbiter: a coordination service that speaks the etcd v3 protocol.");
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(LocalClusterCommand.Create());
root.Subcommands.Add(VerifyCommand.Create());
root.Subcommands.Add(TransactionsCommand.Create());
root.Subcommands.Add(SnapshotCommand.Create());
root.Subcommands.Add(CertCommand.Create());
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
