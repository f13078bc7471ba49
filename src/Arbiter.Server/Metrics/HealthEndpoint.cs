using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace Arbiter.Server.Metrics;

/// <summary>
/// etcd's plain-HTTP <c>/health</c>: <c>{"health":"true"}</c> (200) while the member has a leader,
/// no alarm is raised and a linearizable read completes within <see cref="ReadTimeoutMs"/>;
/// <c>{"health":"false"}</c> (503) otherwise.
/// </summary>
public static class HealthEndpoint
{
    /// <summary>Longest the health read may take before the member is reported unhealthy, in ms (etcd: 1 s).</summary>
    public const int ReadTimeoutMs = 1000;

    private static readonly RangeRequest HealthRead = new() { Key = ByteString.CopyFromUtf8("health") };

    /// <summary>Answers one request.</summary>
    public static async Task HandleAsync(HttpContext context, ArbiterNode node)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(node);
        var healthy = await IsHealthyAsync(node, context.RequestAborted).ConfigureAwait(false);
        context.Response.StatusCode = healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        // etcd writes no Content-Type; Go then sniffs the JSON text as text/plain.
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync(healthy ? "{\"health\":\"true\"}" : "{\"health\":\"false\"}", context.RequestAborted).ConfigureAwait(false);
    }

    private static async Task<bool> IsHealthyAsync(ArbiterNode node, CancellationToken cancellationToken)
    {
        if (!node.HasLeader)
        {
            return false;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ReadTimeoutMs);
        try
        {
            var alarms = await node.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get }, timeout.Token).ConfigureAwait(false);
            if (alarms.Alarms.Count > 0)
            {
                return false;
            }

            await node.RangeAsync(HealthRead, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is OperationCanceledException or Core.EtcdException)
        {
            return false;
        }
    }
}
