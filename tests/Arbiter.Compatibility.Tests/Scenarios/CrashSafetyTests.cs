using System.Collections.Concurrent;
using System.Globalization;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// A real server under concurrent writes is killed with SIGKILL at a seeded random moment, several
/// rounds on the same data dir. Every acknowledged write must survive with its value, and the store
/// revision must never go backwards. Run against etcd it checks the harness itself.
/// </summary>
public abstract class CrashSafetyTests(ITestOutputHelper output)
{
    private const int RoundCount = 4;
    private const int WriterCount = 4;
    private const int AcksBeforeKillMin = 20;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AcknowledgedWritesSurviveSigkill()
    {
        var seed = SeedFromEnvironment(defaultSeed: 4242);
        output.WriteLine($"crash seed {seed} (replay: ARBITER_TEST_SEED={seed})");
        var random = new Random(seed);
        await using var server = CreateServer();
        var acknowledged = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        long revisionSeen = 0;
        try
        {
            for (var round = 0; round <= RoundCount; round++)
            {
                await server.StartAsync(isRestart: round > 0);
                using var channel = GrpcChannel.ForAddress(server.Endpoint);
                var kv = new KV.KVClient(channel);

                var revision = await VerifyAsync(kv, acknowledged, round);
                Assert.True(revision >= revisionSeen, $"round {round}: revision went back from {revisionSeen} to {revision}");
                revisionSeen = revision;
                if (round == RoundCount)
                {
                    break;
                }

                var killAfter = TimeSpan.FromMilliseconds(random.Next(200, 1500));
                var maxAcked = await WriteUntilKilledAsync(server, kv, round, killAfter, acknowledged);
                revisionSeen = Math.Max(revisionSeen, maxAcked);
                output.WriteLine($"round {round}: killed after {killAfter.TotalMilliseconds} ms; {acknowledged.Count} acknowledged writes so far, revision ≥ {revisionSeen}");
            }
        }
        catch (Exception)
        {
            output.WriteLine("--- server log (tail) ---");
            var lines = server.Log.Split('\n');
            output.WriteLine(string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 100))));
            throw;
        }
    }

    [Fact]
    public async Task SigtermShutsDownCleanlyAndKeepsEverything()
    {
        await using var server = CreateServer();
        await server.StartAsync();
        var acknowledged = new Dictionary<string, string>(StringComparer.Ordinal);
        using (var channel = GrpcChannel.ForAddress(server.Endpoint))
        {
            var kv = new KV.KVClient(channel);
            for (var i = 0; i < 50; i++)
            {
                var key = $"term/{i:D3}";
                await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8($"v{i}") });
                acknowledged[key] = $"v{i}";
            }
        }

        await server.StopAsync(TimeSpan.FromSeconds(30));
        await server.StartAsync(isRestart: true);
        using var again = GrpcChannel.ForAddress(server.Endpoint);
        await VerifyAsync(new KV.KVClient(again), acknowledged, round: 1);
    }

    protected abstract ServerProcess CreateServer();

    private static int SeedFromEnvironment(int defaultSeed)
    {
        var text = Environment.GetEnvironmentVariable("ARBITER_TEST_SEED");
        return text == null ? defaultSeed : int.Parse(text, CultureInfo.InvariantCulture);
    }

    /// <summary>Every acknowledged key is present with its value; returns the store revision.</summary>
    private static async Task<long> VerifyAsync(KV.KVClient kv, IReadOnlyDictionary<string, string> acknowledged, int round)
    {
        var all = await kv.RangeAsync(
            new RangeRequest { Key = ByteString.CopyFrom(0), RangeEnd = ByteString.CopyFrom(0) },
            deadline: DateTime.UtcNow.Add(Deadline));
        var stored = all.Kvs.ToDictionary(k => k.Key.ToStringUtf8(), k => k.Value.ToStringUtf8(), StringComparer.Ordinal);
        var lost = acknowledged.Where(a => !stored.TryGetValue(a.Key, out var value) || value != a.Value).Take(10).ToList();
        Assert.True(lost.Count == 0, $"round {round}: acknowledged writes lost or changed, e.g. {string.Join(", ", lost.Select(l => $"{l.Key}={l.Value} (now {(stored.TryGetValue(l.Key, out var v) ? v : "missing")})"))}");
        return all.Header.Revision;
    }

    /// <summary>Writers put unique keys until the server dies; returns the highest acknowledged revision.</summary>
    private static async Task<long> WriteUntilKilledAsync(
        ServerProcess server, KV.KVClient kv, int round, TimeSpan killAfter, ConcurrentDictionary<string, string> acknowledged)
    {
        using var stop = new CancellationTokenSource();
        var acks = 0;
        long maxRevision = 0;
        var writers = Enumerable.Range(0, WriterCount).Select(writer => Task.Run(async () =>
        {
            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                var key = $"crash/r{round}/w{writer}/{n:D6}";
                var value = $"v-{round}-{writer}-{n}";
                try
                {
                    var response = await kv.PutAsync(
                        new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) },
                        deadline: DateTime.UtcNow.AddSeconds(10));
                    acknowledged[key] = value;
                    Interlocked.Increment(ref acks);
                    InterlockedMax(ref maxRevision, response.Header.Revision);
                }
                catch (RpcException)
                {
                    // The server is gone; unacknowledged writes may or may not have landed.
                    return;
                }
            }
        })).ToList();

        // Kill at the seeded moment, but only once there is something to lose.
        var started = DateTime.UtcNow;
        while (Volatile.Read(ref acks) < AcksBeforeKillMin || DateTime.UtcNow - started < killAfter)
        {
            if (DateTime.UtcNow - started > Deadline)
            {
                throw new TimeoutException($"only {acks} writes acknowledged within {Deadline}");
            }

            await Task.Delay(10);
        }

        await server.KillAsync();
        await stop.CancelAsync();
        await Task.WhenAll(writers).WaitAsync(Deadline);
        return Interlocked.Read(ref maxRevision);
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Interlocked.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}

[Trait("Target", "Arbiter")]
public sealed class CrashSafetyTestsOnArbiter(ITestOutputHelper output) : CrashSafetyTests(output)
{
    protected override ServerProcess CreateServer() => new ArbiterProcess("arbiter-crash");
}

/// <summary>The same rounds against etcd: proves the harness (kill, restart, verification) is sound.</summary>
[Trait("Target", "Etcd")]
public sealed class CrashSafetyTestsOnEtcd(ITestOutputHelper output) : CrashSafetyTests(output)
{
    protected override ServerProcess CreateServer() => new EtcdProcess("etcd-crash");
}
