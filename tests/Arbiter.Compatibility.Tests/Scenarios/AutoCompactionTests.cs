using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// <c>--auto-compaction-retention</c> on a real etcd and on an Arbiter process, same flags, same
/// etcdctl commands: old revisions go by themselves, the latest values stay.
/// </summary>
public sealed class AutoCompactionTests(ITestOutputHelper output)
{
    private static readonly string[] Flags = ["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "2s"];

    [Theory]
    [InlineData("etcd")]
    [InlineData("arbiter")]
    public async Task Periodic_retention_compacts_old_revisions_and_keeps_the_latest(string target)
    {
        await using ServerProcess server = target == "etcd"
            ? new EtcdProcess("etcd-autocompact", Flags)
            : new ArbiterProcess("arbiter-autocompact", Flags);
        await server.StartAsync();
        var etcdctl = new EtcdctlRunner(server.Endpoint);
        try
        {
            // A fresh store is at revision 1: these puts are revisions 2, 3 and 4.
            foreach (var value in new[] { "v1", "v2", "v3" })
            {
                (await etcdctl.RunAsync("put", "auto/k", value)).EnsureSuccess();
            }

            // Retention 2 s: the compactor samples every 0.2 s and compacts to the revision of 2 s ago.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            EtcdctlResult old;
            while (true)
            {
                old = await etcdctl.RunAsync("get", "auto/k", "--rev=2");
                if (old.ExitCode != 0 || DateTime.UtcNow > deadline)
                {
                    break;
                }

                await Task.Delay(100);
            }

            Assert.NotEqual(0, old.ExitCode);
            Assert.Contains("required revision has been compacted", old.Stderr, StringComparison.Ordinal);
            Assert.Equal(["auto/k", "v3"], (await etcdctl.RunAsync("get", "auto/k")).EnsureSuccess().Lines);
        }
        finally
        {
            output.WriteLine(etcdctl.Transcript);
        }
    }
}
