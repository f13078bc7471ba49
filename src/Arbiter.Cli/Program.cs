using System.CommandLine;
using Arbiter.Cli.Commands;

var root = new RootCommand("Arbiter: a coordination service that speaks the etcd v3 protocol.");
root.Subcommands.Add(ServeCommand.Create());
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
