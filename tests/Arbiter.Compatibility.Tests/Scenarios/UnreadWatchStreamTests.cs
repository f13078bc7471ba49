using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// Issue #17 item 6: a watch stream whose client never reads cannot make the server hold what it
/// is sent. A real <c>arbiter serve</c> runs under a GC heap hard limit (out of memory past it);
/// several raw sockets each open a watch and never read a byte while far more than that limit of
/// events is produced (compacted as it goes, so history does not hold it). The server must stay
/// up, a normal watcher must receive every event, and the server's peak resident memory is reported.
/// Soak: in the clean-clone CI of 2026-12-03 (load 20, other test projects running beside it) the
/// reading watcher got no response for 2 minutes; the likely cause is that it fell behind the
/// 512 KiB puts and the compaction every 50 puts then cancelled it, as etcd cancels a watcher whose
/// history is compacted. A cancel now fails the test with its reason; the workload needs a reader
/// that keeps up (or compaction that waits for it) before this returns to the default run.
/// </summary>
[Trait("Category", "Soak")]
public sealed class UnreadWatchStreamTests(ITestOutputHelper output)
{
    private const int HeapHardLimitBytes = 384 * 1024 * 1024;
    // 600 MiB of values, each sent to every watcher. A stream bounded only by a count of queued
    // responses (1024, as before the byte bound) would hold 512 MiB of them: past the heap limit.
    private const int ValueSizeBytes = 512 * 1024;
    private const int Puts = 1200;
    private const int UnreadStreams = 4;
    private const int CompactEveryPuts = 50;
    private static readonly TimeSpan CallDeadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task WatchStreamsThatNeverReadDoNotGrowTheServerAndOthersKeepReceiving()
    {
        await using var server = new ArbiterProcess(
            "arbiter-unread-watch",
            ["--in-memory"],
            new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = $"0x{HeapHardLimitBytes:x}" });
        await server.StartAsync();

        // The clients that never read: a small receive window, and no read at all.
        var watchRequest = new WatchRequest { CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFromUtf8("unread/"), RangeEnd = ByteString.CopyFromUtf8("unread0") } }.ToByteArray();
        var unread = new List<Socket>();
        try
        {
            for (var i = 0; i < UnreadStreams; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                unread.Add(socket);
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.ClientPort));
                await socket.SendAsync(RawHttp2.Preface);
                await socket.SendAsync(RawHttp2.Frame(RawHttp2.Settings, RawHttp2.FlagAck, 0, []));
                await socket.SendAsync(RawHttp2.Request(1, "/etcdserverpb.Watch/Watch", watchRequest, endStream: false));
            }

            using var channel = GrpcChannel.ForAddress(server.Endpoint, new GrpcChannelOptions { MaxReceiveMessageSize = 64 * 1024 * 1024 });
            var kv = new KV.KVClient(channel);
            await using var watcher = new Fixtures.WatchStream(channel);
            await watcher.CreateAsync(new WatchCreateRequest { Key = ByteString.CopyFromUtf8("unread/"), RangeEnd = ByteString.CopyFromUtf8("unread0") });
            Assert.True((await watcher.ReadAsync(CallDeadline)).Created);

            var received = 0;
            var receiving = Task.Run(async () =>
            {
                while (received < Puts)
                {
                    var response = await watcher.ReadAsync(TimeSpan.FromMinutes(2));
                    Assert.False(response.Canceled, $"the reading watch was cancelled after {received} events: '{response.CancelReason}', compact revision {response.CompactRevision}");
                    received += response.Events.Count;
                }
            });

            var value = ByteString.CopyFrom(new byte[ValueSizeBytes]);
            for (var i = 1; i <= Puts; i++)
            {
                try
                {
                    var put = await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("unread/k"), Value = value }, deadline: DateTime.UtcNow + CallDeadline);
                    if (i % CompactEveryPuts == 0)
                    {
                        await kv.CompactAsync(new CompactionRequest { Revision = put.Header.Revision }, deadline: DateTime.UtcNow + CallDeadline);
                    }
                }
                catch (RpcException e)
                {
                    Assert.Fail($"put {i} failed: {e.Status}\n{server.Log[^Math.Min(server.Log.Length, 4000)..]}");
                }

                Assert.True(server.IsRunning, $"the server exited after {i} puts\n{server.Log[^Math.Min(server.Log.Length, 4000)..]}");
            }

            await receiving.WaitAsync(TimeSpan.FromMinutes(2));
            var peakRss = PeakResidentBytes(server.ProcessId!.Value);
            output.WriteLine($"{Puts} puts of {ValueSizeBytes / 1024} KiB ({(long)Puts * ValueSizeBytes / (1024 * 1024)} MiB per watcher); {UnreadStreams} unread watch streams; the reading watcher got {received} events; server peak RSS {peakRss / (1024 * 1024)} MiB under a {HeapHardLimitBytes / (1024 * 1024)} MiB GC heap limit");
            Assert.Equal(Puts, received);
            Assert.True(server.IsRunning, $"the server exited\n{server.Log[^Math.Min(server.Log.Length, 4000)..]}");
            await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("unread/k") }, deadline: DateTime.UtcNow + CallDeadline);
        }
        finally
        {
            foreach (var socket in unread)
            {
                socket.Dispose();
            }
        }
    }

    private static long PeakResidentBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return -1;
    }
}
