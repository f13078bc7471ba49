using System.Diagnostics;
using System.Globalization;
using System.Text;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Bench.Failover;

/// <summary>
/// <c>arbiter-bench failover-load</c>: closed-loop writers pinned to each endpoint of a cluster
/// (etcd or Arbiter, the same client code), each put with its own client deadline, every request
/// recorded as one CSV line: endpoint index, start and end (Unix ms), outcome (<c>ok</c>,
/// <c>deadline</c>, or <c>StatusCode:detail</c>). bench/failover.sh injects the faults meanwhile.
/// </summary>
public static class FailoverLoad
{
    /// <summary>Usage of the command.</summary>
    public const string Usage = """
        arbiter-bench failover-load --endpoints URL,URL,URL --duration-s S --out FILE.csv
            [--clients-per-endpoint 2] [--deadline-ms 2000] [--value-size 64]
        Writes until --duration-s has passed, or until the file named by --stop-file exists.
        """;

    /// <summary>Runs the command; 0 when the file was written.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        var endpoints = Value(args, "--endpoints")?.Split(',', StringSplitOptions.RemoveEmptyEntries) ?? throw new ArgumentException("--endpoints is required");
        var outPath = Value(args, "--out") ?? throw new ArgumentException("--out is required");
        var durationS = double.Parse(Value(args, "--duration-s") ?? "60", CultureInfo.InvariantCulture);
        var clientsPerEndpoint = int.Parse(Value(args, "--clients-per-endpoint") ?? "2", CultureInfo.InvariantCulture);
        var deadlineMs = int.Parse(Value(args, "--deadline-ms") ?? "2000", CultureInfo.InvariantCulture);
        var valueSize = int.Parse(Value(args, "--value-size") ?? "64", CultureInfo.InvariantCulture);
        var stopFile = Value(args, "--stop-file");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(TimeSpan.FromSeconds(durationS));
        var records = new List<string>[endpoints.Length * clientsPerEndpoint];
        var channels = new List<GrpcChannel>();
        var loops = new List<Task>();
        for (var client = 0; client < records.Length; client++)
        {
            var endpoint = client % endpoints.Length;
            var channel = GrpcChannel.ForAddress(endpoints[endpoint], new GrpcChannelOptions
            {
                HttpHandler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromMilliseconds(deadlineMs), PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan },
                DisposeHttpClient = true,

                // Reconnect every 100 ms while a member is down, so that "serves again" measures
                // the member, not the client's exponential reconnect backoff.
                InitialReconnectBackoff = TimeSpan.FromMilliseconds(100),
                MaxReconnectBackoff = TimeSpan.FromMilliseconds(100),
            });
            channels.Add(channel);
            records[client] = [];
            var mine = records[client];
            var id = client;
            loops.Add(Task.Run(() => WriteLoopAsync(new KV.KVClient(channel), endpoint, id, deadlineMs, valueSize, mine, stop.Token), CancellationToken.None));
        }

        if (stopFile is not null)
        {
            loops.Add(Task.Run(
                async () =>
                {
                    while (!stop.IsCancellationRequested && !File.Exists(stopFile))
                    {
                        await Task.Delay(100, CancellationToken.None);
                    }

                    await stop.CancelAsync();
                },
                CancellationToken.None));
        }

        await Task.WhenAll(loops);
        foreach (var channel in channels)
        {
            channel.Dispose();
        }

        var text = new StringBuilder("endpoint,start_ms,end_ms,outcome\n");
        foreach (var line in records.SelectMany(r => r).Order(StringComparer.Ordinal))
        {
            text.Append(line).Append('\n');
        }

        await File.WriteAllTextAsync(outPath, text.ToString(), CancellationToken.None);
        await output.WriteLineAsync($"{records.Sum(r => r.Count)} requests written to {outPath}");
        return 0;
    }

    private static async Task WriteLoopAsync(KV.KVClient client, int endpoint, int clientId, int deadlineMs, int valueSize, List<string> records, CancellationToken stop)
    {
        var value = ByteString.CopyFrom(new byte[valueSize]);
        for (long sequence = 0; !stop.IsCancellationRequested; sequence++)
        {
            var startMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var clock = Stopwatch.StartNew();
            string outcome;
            try
            {
                await client.PutAsync(
                    new PutRequest { Key = ByteString.CopyFromUtf8($"failover/{clientId}/{sequence % 100}"), Value = value },
                    deadline: DateTime.UtcNow.AddMilliseconds(deadlineMs),
                    cancellationToken: CancellationToken.None);
                outcome = "ok";
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
            {
                outcome = "deadline";
            }
            catch (RpcException e)
            {
                outcome = $"{e.StatusCode}:{e.Status.Detail.Replace(',', ';').Replace('\n', ' ')}";
            }

            records.Add(string.Create(CultureInfo.InvariantCulture, $"{endpoint},{startMs},{startMs + clock.ElapsedMilliseconds},{outcome}"));
            if (outcome != "ok")
            {
                // A refused connection fails at once: don't spin on it.
                await Task.Delay(20, CancellationToken.None);
            }
        }
    }

    internal static string? Value(IReadOnlyList<string> args, string name)
    {
        for (var i = 0; i < args.Count - 1; i++)
        {
            if (args[i] == name)
            {
                return args[i + 1];
            }
        }

        return null;
    }
}
