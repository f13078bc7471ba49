using System.Text.RegularExpressions;
using Arbiter.Compatibility.Tests.Etcdctl;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Lock;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// A normal client disconnect is not an event worth a stack trace (issue 18): a lock wait cut by the
/// client's deadline, a watch stream whose connection is dropped, and an etcdctl watch killed with
/// SIGKILL leave no warning, no error and no stack frame in <c>arbiter serve</c>'s log. The server is
/// stopped before the log is read, so whatever it would log about those calls has been written.
/// </summary>
public sealed partial class ClientDisconnectLogTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Cancelled_calls_dropped_streams_and_killed_clients_log_no_warning_and_no_stack_trace()
    {
        await using var server = new ArbiterProcess("disconnect-log");
        await server.StartAsync();
        try
        {
            using (var channel = GrpcChannel.ForAddress(server.Endpoint))
            {
                var leases = new Protocol.Etcd.Lease.LeaseClient(channel);
                var locks = new Protocol.Lock.Lock.LockClient(channel);
                var holder = (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, deadline: DateTime.UtcNow + Deadline)).ID;
                var waiter = (await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, deadline: DateTime.UtcNow + Deadline)).ID;
                await locks.LockAsync(new LockRequest { Name = ByteString.CopyFromUtf8("held"), Lease = holder }, deadline: DateTime.UtcNow + Deadline);

                // 1. A lock wait the client gives up on (its deadline).
                var cut = await Assert.ThrowsAsync<RpcException>(async () =>
                    await locks.LockAsync(new LockRequest { Name = ByteString.CopyFromUtf8("held"), Lease = waiter }, deadline: DateTime.UtcNow.AddMilliseconds(700)));
                Assert.Equal(StatusCode.DeadlineExceeded, cut.StatusCode);
            }

            // 2. A watch stream whose connection goes away under it.
            var dropped = GrpcChannel.ForAddress(server.Endpoint);
            var watch = new Watch.WatchClient(dropped).Watch();
            await watch.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = ByteString.CopyFromUtf8("w") } });
            Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
            dropped.Dispose();

            // 3. etcdctl watch killed with SIGKILL once its watch is established.
            await using (var etcdctl = new EtcdctlRunner(server.Endpoint).Start("watch", "k"))
            {
                await WaitForAsync(async () => await StartedWatchesAsync(server) >= 2, "etcdctl's watch to be created");
                await etcdctl.KillAsync();
            }

            // The server has finished both streams and the lock wait (counted when their handlers return).
            await WaitForAsync(async () => await HandledAsync(server, "Watch") >= 2 && await HandledAsync(server, "Lock") >= 2, "the server to finish the cancelled calls");
            await server.StopAsync(Deadline);
            var log = server.Log;
            output.WriteLine(log);
            var bad = log.Split('\n').Where(line => WarningOrWorse().IsMatch(line) || StackFrame().IsMatch(line)).ToList();
            Assert.True(bad.Count == 0, $"expected no warning and no stack trace, got:\n{string.Join('\n', bad)}");
        }
        catch (Exception)
        {
            output.WriteLine(server.Log);
            throw;
        }
    }

    private static async Task<double> StartedWatchesAsync(ArbiterProcess server) =>
        await SumAsync(server, "grpc_server_started_total", "Watch");

    private static async Task<double> HandledAsync(ArbiterProcess server, string method) =>
        await SumAsync(server, "grpc_server_handled_total", method);

    private static async Task<double> SumAsync(ArbiterProcess server, string metric, string method)
    {
        using var http = new HttpClient();
        var text = PrometheusText.Parse(await http.GetStringAsync(new Uri($"{server.Endpoint}/metrics")));
        return text.Samples.Where(s => s.Name == metric && s.Labels.TryGetValue("grpc_method", out var m) && m == method).Sum(s => s.Value);
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting for {what}");
            }

            await Task.Delay(50);
        }
    }

    [GeneratedRegex(@"^\S+ (warn|fail|crit):")]
    private static partial Regex WarningOrWorse();

    [GeneratedRegex(@"\bat [A-Za-z_][\w.`<>\[\],]*\(")]
    private static partial Regex StackFrame();
}
