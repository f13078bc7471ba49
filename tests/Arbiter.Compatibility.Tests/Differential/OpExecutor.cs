using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Differential;

/// <summary>One server's answer to an op: a normalized response or a gRPC error (code and text).</summary>
public sealed record OpOutcome(IMessage? Response, StatusCode? Code, string? Detail)
{
    public bool IsError => Code != null;

    /// <summary>Comparable text: errors by code and exact message, responses as normalized JSON.</summary>
    public string Text => IsError ? $"error {Code}: {Detail}" : Normalizer.ToJson(Response!);
}

/// <summary>Sends differential ops to one server over gRPC.</summary>
public sealed class OpExecutor(GrpcChannel channel)
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(20);
    private readonly KV.KVClient _kv = new(channel);
    private readonly Lease.LeaseClient _lease = new(channel);

    /// <summary>How long an op is asked again while a cluster has no leader (docs/operations.md: those answers mean "did not happen").</summary>
    private static readonly TimeSpan LeaderLossRetryTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Sends the op; on a cluster, an answer that says the op did not happen because there was no
    /// leader ("no leader" for any op; any leader-loss answer for a read-only op) is asked again,
    /// as a client would: a leader election is the environment, not an answer to compare. A write
    /// whose outcome is unknown ("possibly due to previous leader failure") is not repeated: it
    /// could apply twice, so it is compared as it is.
    /// </summary>
    public async Task<OpOutcome> ExecuteAsync(IMessage request)
    {
        var giveUpAt = DateTime.UtcNow + LeaderLossRetryTimeout;
        while (true)
        {
            var outcome = await ExecuteOnceAsync(request);
            if (!DidNotHappenForLackOfLeader(request, outcome) || DateTime.UtcNow >= giveUpAt)
            {
                return outcome;
            }

            await Task.Delay(100);
        }
    }

    private static bool DidNotHappenForLackOfLeader(IMessage request, OpOutcome outcome) =>
        outcome.Code == StatusCode.Unavailable
        && (outcome.Detail == EtcdError.NoLeader.Message
            || (request is RangeRequest or LeaseTimeToLiveRequest or LeaseLeasesRequest && outcome.Detail?.StartsWith("etcdserver: ", StringComparison.Ordinal) == true));

    private async Task<OpOutcome> ExecuteOnceAsync(IMessage request)
    {
        var deadline = DateTime.UtcNow + CallTimeout;
        try
        {
            IMessage response = request switch
            {
                RangeRequest r => await _kv.RangeAsync(r, deadline: deadline),
                PutRequest r => await _kv.PutAsync(r, deadline: deadline),
                DeleteRangeRequest r => await _kv.DeleteRangeAsync(r, deadline: deadline),
                TxnRequest r => await _kv.TxnAsync(r, deadline: deadline),
                CompactionRequest r => await _kv.CompactAsync(r, deadline: deadline),
                LeaseGrantRequest r => await _lease.LeaseGrantAsync(r, deadline: deadline),
                LeaseRevokeRequest r => await _lease.LeaseRevokeAsync(r, deadline: deadline),
                LeaseTimeToLiveRequest r => await _lease.LeaseTimeToLiveAsync(r, deadline: deadline),
                LeaseLeasesRequest r => await _lease.LeaseLeasesAsync(r, deadline: deadline),
                LeaseKeepAliveRequest r => await KeepAliveOnceAsync(r, deadline),
                _ => throw new ArgumentException($"unsupported op {request.Descriptor.Name}", nameof(request)),
            };
            return new OpOutcome(Normalizer.Normalize(response), null, null);
        }
        catch (RpcException e) when (e.StatusCode != StatusCode.DeadlineExceeded)
        {
            return new OpOutcome(null, e.StatusCode, e.Status.Detail);
        }
    }

    /// <summary>One request and one answer over the bidirectional keep-alive stream.</summary>
    private async Task<IMessage> KeepAliveOnceAsync(LeaseKeepAliveRequest request, DateTime deadline)
    {
        using var stream = _lease.LeaseKeepAlive(deadline: deadline);
        await stream.RequestStream.WriteAsync(request);
        if (!await stream.ResponseStream.MoveNext(CancellationToken.None))
        {
            throw new InvalidOperationException("keep-alive stream ended without an answer");
        }

        var response = stream.ResponseStream.Current;
        await stream.RequestStream.CompleteAsync();
        return response;
    }
}
