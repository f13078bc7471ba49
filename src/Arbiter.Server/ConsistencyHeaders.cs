using Arbiter.Protocol.Consistency;
using Grpc.Core;

namespace Arbiter.Server;

/// <summary>Reads the consistency a call asks for from its request metadata (see <see cref="ConsistencyMetadata"/>).</summary>
public static class ConsistencyHeaders
{
    /// <summary>The consistency named by <paramref name="context"/>'s metadata, or null (etcd's behaviour) when it names none.</summary>
    /// <exception cref="ConsistencyException">The metadata is malformed.</exception>
    public static ReadConsistency? Of(ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var headers = context.RequestHeaders;
        return headers.Get(ConsistencyMetadata.LevelKey) is null ? null : ConsistencyMetadata.Decode(key => headers.GetValue(key));
    }
}
