using System.Runtime.CompilerServices;
using DotNext.Net.Cluster.Consensus.Raft;

namespace Arbiter.Node.Cluster;

/// <summary>
/// The request and connect timeouts of one member of DotNext's TCP transport. DotNext sets them
/// once for every member from its configuration and has no public way to change one member's;
/// <see cref="SilentLeaderWatch{TMember}"/> needs a short one for a leader gone silent. Each new
/// request reads them when it starts, so a change applies to the next request to that member.
/// </summary>
/// <remarks>
/// Reached through <see cref="UnsafeAccessorAttribute"/> (DotNext.Net.Cluster 6.12's private fields
/// <c>RaftClusterMember.requestTimeout</c> and <c>Client.connectTimeout</c>). <see cref="Verify"/>
/// runs when a member starts, so a DotNext without them fails the start with a clear message instead
/// of running without the shortcut; <c>PeerRequestTimeoutsTests</c> pin them.
/// </remarks>
internal static class PeerRequestTimeouts
{
    private const string ClientTypeName = "DotNext.Net.Cluster.Consensus.Raft.NetworkTransport.ConnectionOriented.Client, DotNext.Net.Cluster";

    /// <summary>Sets both timeouts of <paramref name="member"/> to <paramref name="timeout"/>.</summary>
    public static void Set(RaftClusterMember member, TimeSpan timeout) => Set(member, timeout, timeout);

    /// <summary>
    /// Sets the request and connect timeouts of <paramref name="member"/>: an established leader
    /// waits longer for answers but keeps connection attempts short, so that a member coming back
    /// (a partition healed, a process restarted) is reached again soon.
    /// </summary>
    public static void Set(RaftClusterMember member, TimeSpan request, TimeSpan connect)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(request, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(connect, TimeSpan.Zero);
        RequestTimeout(member) = request;
        ConnectTimeout(member) = connect;
    }

    /// <summary>The member's request timeout, as DotNext reads it at the start of each request.</summary>
    public static TimeSpan RequestTimeoutOf(RaftClusterMember member) => RequestTimeout(member);

    /// <summary>The member's connect timeout.</summary>
    public static TimeSpan ConnectTimeoutOf(RaftClusterMember member) => ConnectTimeout(member);

    /// <summary>
    /// Checks that <paramref name="member"/>'s request and connect timeouts are the ones the
    /// transport was configured with; throws a clear <see cref="InvalidOperationException"/> when
    /// this DotNext keeps them elsewhere.
    /// </summary>
    public static void Verify(RaftClusterMember member, TimeSpan configuredRequest, TimeSpan configuredConnect)
    {
        TimeSpan request, connect;
        try
        {
            request = RequestTimeout(member);
            connect = ConnectTimeout(member);
        }
        catch (Exception e) when (e is MissingFieldException or TypeLoadException or InvalidCastException)
        {
            throw Unsupported(e);
        }

        if (request != configuredRequest || connect != configuredConnect)
        {
            throw Unsupported(null);
        }
    }

    private static InvalidOperationException Unsupported(Exception? cause) => new(
        $"This DotNext.Net.Cluster ({typeof(RaftClusterMember).Assembly.GetName().Version}) does not keep a member's request and connect timeouts " +
        "where Arbiter sets them for a silent leader (see PeerRequestTimeouts). Use the DotNext version Arbiter pins.",
        cause);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "requestTimeout")]
    private static extern ref TimeSpan RequestTimeout(RaftClusterMember member);

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "connectTimeout")]
    private static extern ref TimeSpan ConnectTimeout([UnsafeAccessorType(ClientTypeName)] object member);
}
