using System.Diagnostics;
using Echo;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Server.Kestrel.Core;

if (args[0] == "serve")
{
    var b = WebApplication.CreateSlimBuilder();
    b.Logging.ClearProviders();
    b.WebHost.ConfigureKestrel(k => k.ListenLocalhost(int.Parse(args[1]), o => o.Protocols = HttpProtocols.Http2));
    b.Services.AddGrpc();
    var app = b.Build();
    app.MapGrpcService<EchoSvc>();
    app.Run();
    return;
}
int port = int.Parse(args[1]); string kind = args[2]; int seconds = int.Parse(args[3]); int serverPid = int.Parse(args[4]);
var ch = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
var client = new Echo.Echo.EchoClient(ch);
var msg = new Msg { Payload = ByteString.CopyFrom(new byte[64]) };
AsyncDuplexStreamingCall<Msg, Msg>? duplex = null;
async Task<Msg> Once()
{
    if (kind == "unary") return await client.UnaryAsync(msg);
    duplex ??= client.Duplex();
    await duplex.RequestStream.WriteAsync(msg);
    if (!await duplex.ResponseStream.MoveNext(default)) throw new Exception("eof");
    return duplex.ResponseStream.Current;
}
for (var w = Stopwatch.StartNew(); w.Elapsed.TotalSeconds < 3;) await Once();
static double Cpu(int pid) { var f = File.ReadAllText($"/proc/{pid}/stat").Split(' '); return (long.Parse(f[13]) + long.Parse(f[14])) * 10_000.0; } // µs
var lat = new List<double>();
double s0 = Cpu(serverPid), c0 = Cpu(Environment.ProcessId); long a0 = GC.GetTotalAllocatedBytes(true);
var sw = Stopwatch.StartNew();
while (sw.Elapsed.TotalSeconds < seconds) { long t = Stopwatch.GetTimestamp(); await Once(); lat.Add(Stopwatch.GetElapsedTime(t).TotalMicroseconds); }
double s1 = Cpu(serverPid), c1 = Cpu(Environment.ProcessId);
lat.Sort();
int n = lat.Count;
Console.WriteLine($"{kind} calls/s={n / sw.Elapsed.TotalSeconds:F0} p50us={lat[n / 2]:F0} p99us={lat[n * 99 / 100]:F0} serverCpuUs/call={(s1 - s0) / n:F0} clientCpuUs/call={(c1 - c0) / n:F0} allocB/call={(GC.GetTotalAllocatedBytes(true)-a0)/n}");
if (duplex != null) { await duplex.RequestStream.CompleteAsync(); }

class EchoSvc : Echo.Echo.EchoBase
{
    public override Task<Msg> Unary(Msg request, ServerCallContext context) => Task.FromResult(request);
    public override async Task Duplex(IAsyncStreamReader<Msg> requestStream, IServerStreamWriter<Msg> responseStream, ServerCallContext context)
    {
        await foreach (var m in requestStream.ReadAllAsync()) await responseStream.WriteAsync(m);
    }
}
