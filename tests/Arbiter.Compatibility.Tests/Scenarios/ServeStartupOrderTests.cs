using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// <c>arbiter serve</c> builds its web application while the node starts (issue #12), but opens the
/// client port only once the node is ready, as etcd does. The node's start is held deterministically:
/// the member's <c>member/cluster-id</c> is a FIFO, so reading it blocks until the test writes it.
/// </summary>
public sealed class ServeStartupOrderTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task The_client_port_opens_only_once_the_node_is_ready()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), $"arbiter-startup-order-{Guid.NewGuid():N}");
        var fifo = Path.Combine(dataDir, "member", "cluster-id");
        Directory.CreateDirectory(Path.GetDirectoryName(fifo)!);
        MakeFifo(fifo);
        var clientPort = PortAllocator.FreePort();
        var client = $"http://127.0.0.1:{clientPort}";
        var peer = $"http://127.0.0.1:{PortAllocator.FreePort()}";
        try
        {
            await using var server = ManagedProcess.Start(
                "dotnet",
                [ArbiterProcess.DllPath, "serve", "--name", "solo", "--data-dir", dataDir, "--listen-client-urls", client,
                    "--initial-advertise-peer-urls", peer, "--initial-cluster", $"solo={peer}", "--log-level", "debug"],
                "arbiter-startup-order");

            // The application is built; the node cannot be ready (nobody wrote the FIFO).
            await WaitUntilAsync(() => server.Log.Contains("Web application built", StringComparison.Ordinal), server, "the web application to be built");
            Assert.DoesNotContain("ready at revision", server.Log, StringComparison.Ordinal);
            Assert.False(Accepts(clientPort), $"the client port accepted a connection before the node was ready\n{server.Log}");

            // Release the node: the write completes once the server opens the FIFO to read it.
            await Task.Run(() => File.WriteAllText(fifo, "00000000000000aa\n")).WaitAsync(Deadline);
            using var channel = GrpcChannel.ForAddress(client);
            var kv = new KV.KVClient(channel);
            var answered = false;
            await WaitUntilAsync(
                () =>
                {
                    try
                    {
                        kv.Range(new RangeRequest { Key = ByteString.CopyFromUtf8("probe") }, deadline: DateTime.UtcNow.AddSeconds(2));
                        return answered = true;
                    }
                    catch (Grpc.Core.RpcException)
                    {
                        return false;
                    }
                },
                server,
                "a read to be answered");
            var log = server.Log;
            output.WriteLine(log);
            Assert.True(answered);
            var ready = log.IndexOf("ready at revision", StringComparison.Ordinal);
            var serving = log.IndexOf("arbiter serving the etcd v3 API", StringComparison.Ordinal);
            Assert.True(ready >= 0 && serving > ready, $"the node's ready line must come before serving\n{log}");
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    private static void MakeFifo(string path)
    {
        using var mkfifo = Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }

    private static bool Accepts(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, ManagedProcess server, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.False(server.HasExited, $"serve exited while waiting for {what}\n{server.Log}");
            Assert.True(deadline.Elapsed < Deadline, $"waited {Deadline} for {what}\n{server.Log}");
            await Task.Delay(50);
        }
    }
}
