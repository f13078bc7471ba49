using System.Text;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Differential;

/// <summary>
/// Sends the same seeded op sequence to a reference etcd and a candidate server (both fresh) and
/// requires identical answers op by op, then identical watch event streams.
/// </summary>
public sealed class DifferentialRun(int seed, int opCount, ITestOutputHelper output)
{
    public const string SeedVariable = "ARBITER_TEST_SEED";
    private static readonly TimeSpan WatchTimeout = TimeSpan.FromSeconds(30);
    private readonly Queue<string> _recent = new();
    private readonly SortedDictionary<string, int> _outcomeCounts = new(StringComparer.Ordinal);

    /// <summary>The seeds to run: the one in ARBITER_TEST_SEED if set, else the defaults.</summary>
    public static TheoryData<int> Seeds(params int[] defaults)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(SeedVariable);
        return fromEnvironment != null
            ? new TheoryData<int>(int.Parse(fromEnvironment, System.Globalization.CultureInfo.InvariantCulture))
            : new TheoryData<int>(defaults);
    }

    public Task RunAsync(ServerProcess reference, ServerProcess candidate)
        => RunAsync(reference, () => candidate.StartAsync(), () => candidate.Endpoint, () => candidate.Log);

    /// <summary>Against a fixture's endpoint (a cluster's follower); the caller disposes the fixture.</summary>
    public Task RunAsync(ServerProcess reference, ServerFixture candidate)
        => RunAsync(reference, candidate.InitializeAsync, () => candidate.Endpoint, () => candidate.Log);

    private async Task RunAsync(ServerProcess reference, Func<Task> startCandidate, Func<string> candidateEndpoint, Func<string> candidateLog)
    {
        output.WriteLine($"differential seed {seed}, {opCount} ops (replay: {SeedVariable}={seed})");
        try
        {
            await Task.WhenAll(reference.StartAsync(), startCandidate());
            using var referenceChannel = GrpcChannel.ForAddress(reference.Endpoint, ServerFixture.ChannelOptions);
            using var candidateChannel = GrpcChannel.ForAddress(candidateEndpoint(), ServerFixture.ChannelOptions);
            await RunOpsAsync(referenceChannel, candidateChannel);
        }
        catch (Exception)
        {
            output.WriteLine($"--- seed {seed}: last ops ---");
            output.WriteLine(string.Join('\n', _recent));
            output.WriteLine("--- reference (etcd) log tail ---");
            output.WriteLine(Tail(reference.Log));
            output.WriteLine("--- candidate log tail ---");
            output.WriteLine(Tail(candidateLog()));
            throw;
        }
    }

    private async Task RunOpsAsync(GrpcChannel referenceChannel, GrpcChannel candidateChannel)
    {
        var referenceOps = new OpExecutor(referenceChannel);
        var candidateOps = new OpExecutor(candidateChannel);
        var state = new ModelState();
        var index = 0;

        // Some history first, so that a watch from revision 1 and a watch from "now" differ.
        foreach (var name in new[] { "a", "b/1", "a" })
        {
            await StepAsync(index++, new PutRequest { Key = OpGenerator.Key(name), Value = ByteString.CopyFromUtf8("setup") }, referenceOps, candidateOps, state);
        }

        var watchPrefix = OpGenerator.Key(string.Empty);
        WatchCreateRequest Create(long startRevision) => new() { Key = watchPrefix, RangeEnd = OpGenerator.PrefixEnd(watchPrefix), PrevKv = true, StartRevision = startRevision };
        await using var referenceFromStart = await WatchRecorder.StartAsync(referenceChannel, Create(1), WatchTimeout);
        await using var candidateFromStart = await WatchRecorder.StartAsync(candidateChannel, Create(1), WatchTimeout);
        await using var referenceFromNow = await WatchRecorder.StartAsync(referenceChannel, Create(0), WatchTimeout);
        await using var candidateFromNow = await WatchRecorder.StartAsync(candidateChannel, Create(0), WatchTimeout);

        // History replay must be through before any compaction could cancel a slow watch.
        await Task.WhenAll(referenceFromStart.WaitForRevisionAsync(state.Revision, WatchTimeout), candidateFromStart.WaitForRevisionAsync(state.Revision, WatchTimeout));

        var generator = new OpGenerator(seed);
        while (index < opCount)
        {
            await StepAsync(index, generator.Next(index, state), referenceOps, candidateOps, state);
            index++;
        }

        var all = new RangeRequest { Key = ByteString.CopyFrom(0), RangeEnd = ByteString.CopyFrom(0) };
        await StepAsync(index, all, referenceOps, candidateOps, state);

        await Task.WhenAll(
            referenceFromStart.WaitForRevisionAsync(state.Revision, WatchTimeout),
            candidateFromStart.WaitForRevisionAsync(state.Revision, WatchTimeout),
            referenceFromNow.WaitForRevisionAsync(state.Revision, WatchTimeout),
            candidateFromNow.WaitForRevisionAsync(state.Revision, WatchTimeout));
        CompareWatch("watch from revision 1", referenceFromStart.Entries, candidateFromStart.Entries);
        CompareWatch("watch from now", referenceFromNow.Entries, candidateFromNow.Entries);
        output.WriteLine($"seed {seed}: {opCount} ops and {referenceFromStart.Entries.Count} watch events identical; final revision {state.Revision}");
        output.WriteLine(string.Join('\n', _outcomeCounts.Select(c => $"  {c.Value,4} × {c.Key}")));
    }

    private async Task StepAsync(int index, IMessage request, OpExecutor referenceOps, OpExecutor candidateOps, ModelState state)
    {
        var referenceTask = referenceOps.ExecuteAsync(request);
        var candidateTask = candidateOps.ExecuteAsync(request);
        var expected = await referenceTask;
        var actual = await candidateTask;
        AlignRemainingTtl(expected, actual);

        var kind = expected.IsError ? $"{request.Descriptor.Name} → {expected.Code}: {expected.Detail}" : $"{request.Descriptor.Name} → ok";
        _outcomeCounts[kind] = _outcomeCounts.GetValueOrDefault(kind) + 1;
        Remember($"#{index} {request.Descriptor.Name} {Normalizer.ToJson(request)}\n    → {Shorten(expected.Text)}");
        if (expected.Code is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.Internal or Grpc.Core.StatusCode.Unknown)
        {
            // The generator must only produce requests etcd survives; see the reference log below.
            Assert.Fail($"seed {seed}: the reference etcd failed at op #{index} ({expected.Text}); request {Normalizer.ToJson(request)}");
        }

        if (expected.Text != actual.Text)
        {
            var message = new StringBuilder()
                .AppendLine($"seed {seed} ({SeedVariable}={seed}): op #{index} {request.Descriptor.Name} answered differently")
                .AppendLine($"request:   {Normalizer.ToJson(request)}")
                .AppendLine($"etcd:      {expected.Text}")
                .AppendLine($"candidate: {actual.Text}")
                .ToString();
            Assert.Fail(message);
        }

        if (expected.Response?.Descriptor.FindFieldByName("header")?.Accessor.GetValue(expected.Response) is ResponseHeader { Revision: > 0 } header)
        {
            state.Revision = header.Revision;
        }

        if (request is CompactionRequest compaction && !expected.IsError)
        {
            state.CompactedRevision = compaction.Revision;
        }
    }

    /// <summary>Remaining TTL is a clock reading: equal within one second is equal.</summary>
    private static void AlignRemainingTtl(OpOutcome expected, OpOutcome actual)
    {
        if (expected.Response is LeaseTimeToLiveResponse reference && actual.Response is LeaseTimeToLiveResponse candidate
            && Math.Abs(reference.TTL - candidate.TTL) <= 1)
        {
            candidate.TTL = reference.TTL;
        }
    }

    private void CompareWatch(string name, IReadOnlyList<string> expected, IReadOnlyList<string> actual)
    {
        for (var i = 0; i < Math.Max(expected.Count, actual.Count); i++)
        {
            var e = i < expected.Count ? expected[i] : "(none)";
            var a = i < actual.Count ? actual[i] : "(none)";
            if (e != a)
            {
                Assert.Fail($"seed {seed} ({SeedVariable}={seed}): {name} differs at event #{i} (etcd has {expected.Count}, candidate {actual.Count})\netcd:      {e}\ncandidate: {a}");
            }
        }
    }

    private void Remember(string line)
    {
        _recent.Enqueue(line);
        if (_recent.Count > 15)
        {
            _recent.Dequeue();
        }
    }

    private static string Shorten(string text) => text.Length > 400 ? text[..400] + "…" : text;

    private static string Tail(string log)
    {
        var lines = log.Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 40)));
    }
}
