using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Arbiter.Fuzz;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Net.Client;

// arbiter-fuzz run [--target NAME|all] [--inputs N] [--seed S] [--corpus DIR] [--out DIR]
// arbiter-fuzz corpus --out DIR      (writes the seed corpus: built-in seeds and live client captures)
var command = args.Length > 0 ? args[0] : "run";
string Option(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

if (command == "corpus")
{
    await CorpusWriter.WriteAsync(Option("--out", "tests/fuzz-corpus"));
    return 0;
}

var targets = Option("--target", "all") is var chosen && chosen == "all" ? FuzzTargets.Names : [chosen];
var inputs = long.Parse(Option("--inputs", "1000000"), CultureInfo.InvariantCulture);
var seed = int.Parse(Option("--seed", FuzzEngine.SeedFromEnvironment().ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
var corpusRoot = Option("--corpus", "tests/fuzz-corpus");
var outDir = Option("--out", string.Empty);
Console.WriteLine($"fuzz: seed {seed} (replay with --seed {seed} or ARBITER_TEST_SEED={seed}), {inputs:N0} inputs per target, corpus {corpusRoot}");
var reports = new List<FuzzReport>();
foreach (var name in targets)
{
    var target = FuzzTargets.Create(name);
    var report = FuzzEngine.Run(target, FuzzEngine.LoadCorpus(Path.Combine(corpusRoot, name)), inputs, seed);
    Console.WriteLine(report);
    reports.Add(report);
    if (report.Failure is { } failure && outDir.Length > 0)
    {
        Directory.CreateDirectory(outDir);
        await File.WriteAllBytesAsync(Path.Combine(outDir, $"{name}-{failure.Kind}.bin"), failure.Input);
    }
}

if (outDir.Length > 0)
{
    Directory.CreateDirectory(outDir);
    var rows = reports.Select(r => new
    {
        target = r.Target,
        seed = r.Seed,
        inputs = r.Inputs,
        elapsed_s = Math.Round(r.Elapsed.TotalSeconds, 1),
        inputs_per_s = Math.Round(r.Inputs / Math.Max(r.Elapsed.TotalSeconds, 1e-9)),
        alloc_bytes_max_per_input = r.AllocatedBytesMax,
        alloc_bytes_max_input_length = r.AllocatedBytesMaxInputLength,
        input_ms_max = Math.Round(r.InputMsMax, 1),
        corpus_start = r.CorpusStart,
        corpus_end = r.CorpusEnd,
        outcomes = r.Outcomes,
        failure = r.Failure is null ? null : $"{r.Failure.Kind}: {r.Failure.Message}",
    });
    await File.WriteAllTextAsync(Path.Combine(outDir, "summary.json"), JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
    await File.WriteAllLinesAsync(Path.Combine(outDir, "summary.txt"), reports.Select(r => r.ToString()));
}

return reports.Any(r => r.Failure is not null) ? 1 : 0;

/// <summary>Writes tests/fuzz-corpus: per target, the built-in seeds and, for the HTTP/2 targets, bytes captured from real clients.</summary>
internal static class CorpusWriter
{
    public static async Task WriteAsync(string root)
    {
        var captures = new List<(string Client, byte[] Bytes)>
        {
            ("grpc-dotnet-put", await CaptureAsync(async endpoint =>
            {
                using var channel = GrpcChannel.ForAddress(endpoint);
                await new KV.KVClient(channel).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("foo"), Value = ByteString.CopyFromUtf8("bar") }, deadline: DateTime.UtcNow.AddSeconds(1));
            })),
            ("etcdctl-put", await CaptureAsync(endpoint => RunAsync("etcdctl", $"--endpoints={endpoint}", "--dial-timeout=2s", "--command-timeout=1s", "put", "foo", "bar"))),
            ("etcdctl-endpoint-status", await CaptureAsync(endpoint => RunAsync("etcdctl", $"--endpoints={endpoint}", "--dial-timeout=2s", "--command-timeout=1s", "endpoint", "status"))),
            ("etcdctl-watch", await CaptureAsync(endpoint => RunAsync("etcdctl", $"--endpoints={endpoint}", "--dial-timeout=2s", "--command-timeout=1s", "watch", "--prefix", "app/"))),
        };

        foreach (var name in FuzzTargets.Names)
        {
            var target = FuzzTargets.Create(name);
            var files = target.BuiltInSeeds().Select((bytes, i) => ($"seed-{i:D3}.bin", bytes)).ToList();
            if (name == "http2-edge")
            {
                files.AddRange(captures.Where(c => c.Bytes.Length > 24).Select(c => ($"capture-{c.Client}.bin", c.Bytes)));
            }
            else if (name == "first-bytes")
            {
                files.AddRange(captures.Where(c => c.Bytes.Length > 0).Select(c => ($"capture-{c.Client}.bin", c.Bytes[..Math.Min(64, c.Bytes.Length)])));
            }
            else if (name == "hpack")
            {
                files.AddRange(captures.SelectMany(c => HeaderBlocks(c.Bytes).Select((block, i) => ($"capture-{c.Client}-{i}.bin", block))));
            }

            var directory = Path.Combine(root, name);
            Directory.CreateDirectory(directory);
            foreach (var (file, bytes) in files)
            {
                await File.WriteAllBytesAsync(Path.Combine(directory, file), bytes);
            }

            Console.WriteLine($"{directory}: {files.Count} files");
        }
    }

    // A listener that answers the preface with SETTINGS (so clients send their calls) and records what the client sends.
    private static async Task<byte[]> CaptureAsync(Func<string, Task> client)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var endpoint = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        var recorded = new MemoryStream();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var recording = Task.Run(async () =>
        {
            try
            {
                using var socket = await listener.AcceptSocketAsync(stop.Token);
                await socket.SendAsync(Seeds.Frame(0x4, 0, 0, []), stop.Token);
                var buffer = new byte[64 * 1024];
                var acked = false;
                while (true)
                {
                    var read = await socket.ReceiveAsync(buffer, stop.Token);
                    if (read == 0)
                    {
                        break;
                    }

                    recorded.Write(buffer, 0, read);
                    if (!acked)
                    {
                        acked = true;
                        await socket.SendAsync(Seeds.Frame(0x4, 0x1, 0, []), stop.Token);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
            }
        });
        try
        {
            await client(endpoint);
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // No answer comes: the capture is what matters.
        }

        await recording;
        return recorded.ToArray();
    }

    private static async Task RunAsync(string file, params string[] arguments)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
        }
    }

    // The header block fragments of the HEADERS frames in a captured client byte stream.
    private static List<byte[]> HeaderBlocks(byte[] bytes)
    {
        var span = bytes.AsSpan();
        var offset = span.StartsWith(Seeds.Preface) ? Seeds.Preface.Length : 0;
        var blocks = new List<byte[]>();
        while (offset + 9 <= bytes.Length)
        {
            var length = (bytes[offset] << 16) | (bytes[offset + 1] << 8) | bytes[offset + 2];
            var type = bytes[offset + 3];
            var flags = bytes[offset + 4];
            if (offset + 9 + length > bytes.Length)
            {
                break;
            }

            if (type == 0x1)
            {
                var payload = bytes.AsSpan(offset + 9, length);
                var pad = (flags & 0x8) != 0 ? payload[0] : 0;
                var start = ((flags & 0x8) != 0 ? 1 : 0) + ((flags & 0x20) != 0 ? 5 : 0);
                if (start + pad <= payload.Length)
                {
                    blocks.Add(payload[start..(payload.Length - pad)].ToArray());
                }
            }

            offset += 9 + length;
        }

        return blocks;
    }
}
