using Arbiter.Protocol.Etcd;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.History;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Verification.Workloads;

/// <summary>
/// Linearizable registers: clients read, write unique values and compare-and-set a few keys through
/// the etcd KV API (a CAS is a Txn comparing the value), each client on one member and moving to the
/// next when a call fails; optional pinned readers stay on one member and only read. A failed read
/// is <c>fail</c> (no effect); a failed write or CAS is <c>info</c> and its client continues as a
/// new process. Checked with <see cref="LinearizabilityChecker"/>.
/// </summary>
public sealed class RegisterWorkload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "register";

    /// <inheritdoc/>
    public Task RunAsync(WorkloadContext context, CancellationToken stop)
    {
        var clients = Enumerable.Range(0, context.Options.Clients).Select(c => Task.Run(() => ClientAsync(context, c, stop), CancellationToken.None));
        var readers = Enumerable.Range(0, context.Options.PinnedReadersPerMember * context.Endpoints.Count)
            .Select(r => Task.Run(() => PinnedReaderAsync(context, r, stop), CancellationToken.None));
        return Task.WhenAll(clients.Concat(readers));
    }

    /// <summary>Pause between a pinned reader's reads: enough reads to see a cut-off member, few enough to keep the history checkable.</summary>
    private const int PinnedReadPauseMs = 10;

    private static async Task PinnedReaderAsync(WorkloadContext context, int reader, CancellationToken stop)
    {
        var random = new Random(unchecked((context.Seed * 37) + reader));
        var process = context.Recorder.NewProcess();
        var endpoint = context.Endpoints[reader % context.Endpoints.Count];
        var kv = new KV.KVClient(context.Channel(endpoint));
        var keys = Keys(context);
        while (!stop.IsCancellationRequested)
        {
            await ReadAsync(context, kv, process, keys[random.Next(keys.Length)], $"via {endpoint} (pinned)", context.ClientFaults.Token).ConfigureAwait(false);
            try
            {
                await Task.Delay(PinnedReadPauseMs, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>One recorded read of <paramref name="key"/>: Ok and its value (null when absent), or not Ok when the read failed (recorded <c>fail</c>).</summary>
    private static async Task<(bool Ok, string? Value)> ReadAsync(WorkloadContext context, KV.KVClient kv, int process, string key, string at, CancellationToken fault)
    {
        var id = context.Recorder.Invoke(process, OperationKind.Read, key);
        try
        {
            var response = await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key), Serializable = context.Options.SerializableReads }, deadline: context.Deadline(), cancellationToken: fault).ConfigureAwait(false);
            var value = response.Kvs.Count == 0 ? null : response.Kvs[0].Value.ToStringUtf8();
            context.Recorder.Complete(id, OperationStatus.Ok, value: value, revision: response.Header.Revision, note: at);
            return (true, value);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            context.Recorder.Complete(id, OperationStatus.Fail, note: $"{at}: {Describe(e)}");
            return (false, null);
        }
    }

    private static string[] Keys(WorkloadContext context) => [.. Enumerable.Range(0, context.Options.Keys).Select(k => $"{context.Options.KeyPrefix}r{k}")];

    private static async Task ClientAsync(WorkloadContext context, int client, CancellationToken stop)
    {
        var random = new Random(unchecked((context.Seed * 31) + client));
        var recorder = context.Recorder;
        var process = recorder.NewProcess();
        var endpoint = client % context.Endpoints.Count;
        var known = new Dictionary<string, string?>(StringComparer.Ordinal);
        var keys = Keys(context);
        for (var sequence = 0; !stop.IsCancellationRequested; sequence++)
        {
            var key = keys[random.Next(keys.Length)];
            var kv = new KV.KVClient(context.Channel(context.Endpoints[endpoint]));
            var roll = random.NextDouble();
            var fault = context.ClientFaults.Token;
            var at = $"via {context.Endpoints[endpoint]}";
            if (roll < 0.5)
            {
                var read = await ReadAsync(context, kv, process, key, at, fault).ConfigureAwait(false);
                if (read.Ok)
                {
                    known[key] = read.Value;
                }
                else
                {
                    endpoint = (endpoint + 1) % context.Endpoints.Count;
                }

                continue;
            }

            var written = $"c{client}-{sequence}";
            var isCas = roll >= 0.75;
            known.TryGetValue(key, out var expected);
            var opId = recorder.Invoke(process, isCas ? OperationKind.Cas : OperationKind.Write, key, written, isCas ? expected : null);
            try
            {
                if (isCas)
                {
                    var txn = new TxnRequest();
                    txn.Compare.Add(expected is null
                        ? new Compare { Key = ByteString.CopyFromUtf8(key), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Equal, Version = 0 }
                        : new Compare { Key = ByteString.CopyFromUtf8(key), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = ByteString.CopyFromUtf8(expected) });
                    txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(written) } });
                    var response = await kv.TxnAsync(txn, deadline: context.Deadline(), cancellationToken: fault).ConfigureAwait(false);
                    recorder.Complete(opId, OperationStatus.Ok, succeeded: response.Succeeded, revision: response.Succeeded ? response.Header.Revision : 0, note: at);
                    if (response.Succeeded)
                    {
                        known[key] = written;
                    }
                    else
                    {
                        known.Remove(key);
                    }
                }
                else
                {
                    var response = await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(written) }, deadline: context.Deadline(), cancellationToken: fault).ConfigureAwait(false);
                    recorder.Complete(opId, OperationStatus.Ok, revision: response.Header.Revision, note: at);
                    known[key] = written;
                }
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                // Unknown outcome: it may still take effect. This process is done; the client goes on as a new one.
                recorder.Complete(opId, OperationStatus.Info, note: $"{at}: {Describe(e)}");
                process = recorder.NewProcess();
                known.Remove(key);
                endpoint = (endpoint + 1) % context.Endpoints.Count;
            }
        }
    }

    internal static string Describe(Exception e) => e is RpcException r ? $"{r.StatusCode} {r.Status.Detail}" : "cancelled by a client-side fault";

    /// <inheritdoc/>
    public WorkloadCheck Check(HistoryFile history)
    {
        var result = LinearizabilityChecker.Check(history.Operations);
        var ops = result.Keys.Sum(k => k.Operations);
        return new WorkloadCheck(result.Verdict, result.Violations, $"linearizability of {result.Keys.Count} keys, {ops} operations checked");
    }
}
