using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using HdrHistogram;

namespace Arbiter.Bench.Probing;

/// <summary>
/// <c>probe --dir DIR [--out FILE]</c>: the physical floor under any durable write — fsync latency of
/// a 4 KiB append on DIR's disk — and loopback TCP round-trip time.
/// </summary>
public static class MachineProbe
{
    private const int FsyncSamples = 300;
    private const int RttSamples = 20_000;

    /// <summary>Runs the probe command.</summary>
    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        string? dir = null;
        string? outPath = null;
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--dir": dir = Value(); break;
                case "--out": outPath = Value(); break;
                default: throw new ArgumentException($"unknown probe option '{args[i]}'");
            }
        }

        if (dir is null)
        {
            throw new ArgumentException("probe needs --dir DIR (on the disk the servers use)");
        }

        var fsync = MeasureFsync(dir);
        var rtt = await MeasureLoopbackRttAsync(cancellationToken);
        var result = new ProbeResult { FsyncMs = fsync, LoopbackRttMs = rtt };
        var json = JsonSerializer.Serialize(result, BenchCli.JsonOptions);
        if (outPath is not null)
        {
            await File.WriteAllTextAsync(outPath, json, cancellationToken);
        }

        await output.WriteLineAsync(json);
        return 0;
    }

    /// <summary>Appends 4 KiB and fsyncs, <see cref="FsyncSamples"/> times; latency of each write+fsync.</summary>
    public static LatencySummary MeasureFsync(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"fsync-probe-{Environment.ProcessId}.tmp");
        var histogram = new LongHistogram(1, 60_000_000, 3);
        var block = new byte[4096];
        try
        {
            using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1);
            for (var i = 0; i < FsyncSamples; i++)
            {
                var start = Stopwatch.GetTimestamp();
                file.Write(block);
                file.Flush(flushToDisk: true);
                histogram.RecordValue(Math.Max(1, Measurement.TicksToUs(Stopwatch.GetTimestamp() - start)));
            }
        }
        finally
        {
            File.Delete(path);
        }

        return LatencySummary.From(histogram);
    }

    /// <summary>1-byte ping-pong over a loopback TCP connection (Nagle off).</summary>
    public static async Task<LatencySummary> MeasureLoopbackRttAsync(CancellationToken cancellationToken)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var echo = Task.Run(async () =>
        {
            using var server = await listener.AcceptSocketAsync(cancellationToken);
            server.NoDelay = true;
            var buffer = new byte[1];
            while (await server.ReceiveAsync(buffer, cancellationToken) == 1)
            {
                await server.SendAsync(buffer, cancellationToken);
            }
        }, cancellationToken);

        var histogram = new LongHistogram(1, 60_000_000, 3);
        using (var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true })
        {
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            var buffer = new byte[1];
            for (var i = 0; i < RttSamples; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await client.SendAsync(buffer, cancellationToken);
                await client.ReceiveAsync(buffer, cancellationToken);
                // Sub-microsecond resolution matters here; record in tenths of a microsecond.
                histogram.RecordValue(Math.Max(1, (long)((Stopwatch.GetTimestamp() - start) * 10_000_000.0 / Stopwatch.Frequency)));
            }

            client.Shutdown(SocketShutdown.Both);
        }

        await echo;
        var us = LatencySummary.From(histogram);
        // LatencySummary divides by 1000 (µs→ms); the histogram held 0.1 µs units, so divide by 10 more.
        static double Tenth(double ms) => Math.Round(ms / 10, 4);
        return new LatencySummary { P50 = Tenth(us.P50), P90 = Tenth(us.P90), P99 = Tenth(us.P99), P999 = Tenth(us.P999), Max = Tenth(us.Max), Mean = Tenth(us.Mean) };
    }
}

/// <summary>What <see cref="MachineProbe"/> measured.</summary>
public sealed record ProbeResult
{
    /// <summary>4 KiB append + fsync latency.</summary>
    public LatencySummary FsyncMs { get; init; } = new();

    /// <summary>Loopback TCP round trip.</summary>
    public LatencySummary LoopbackRttMs { get; init; } = new();
}
