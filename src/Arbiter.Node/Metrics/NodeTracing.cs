using System.Diagnostics;

namespace Arbiter.Node.Metrics;

/// <summary>
/// The node's spans, through .NET's <see cref="ActivitySource"/> so that any OpenTelemetry tracer
/// provider that adds <see cref="ActivitySourceName"/> exports them: <c>arbiter.propose</c> (a write,
/// from proposal to applied; forwarded to the leader or not) and <c>arbiter.read_index</c> (a
/// linearizable read's wait for the leader's confirmation). Starting a span costs nothing while no
/// one listens.
/// </summary>
public static class NodeTracing
{
    /// <summary>The name of the node's <see cref="ActivitySource"/>, for an OpenTelemetry <c>AddSource</c>.</summary>
    public const string ActivitySourceName = "Arbiter.Node";

    internal static readonly ActivitySource Source = new(ActivitySourceName, typeof(NodeTracing).Assembly.GetName().Version?.ToString());

    /// <summary>A span for one proposal, tagged with the command's kind; null while nothing listens.</summary>
    internal static Activity? StartPropose(Protocol.Internal.Command command)
    {
        var activity = Source.StartActivity("arbiter.propose");
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("arbiter.command", command.OpCase.ToString());
        }

        return activity;
    }

    /// <summary>Marks <paramref name="activity"/> failed with <paramref name="error"/>'s message.</summary>
    internal static void Fail(Activity? activity, Exception error)
    {
        activity?.SetStatus(ActivityStatusCode.Error, error.Message);
    }
}
