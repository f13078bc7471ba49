using System.Globalization;

namespace Arbiter.Crdt;

/// <summary>
/// The identity of one replica of the eventual tier (random per data directory; each member announces its own through the Raft log). A replica id
/// must never be reused by a replica that has lost its state: dots are numbered per replica, so a
/// reused id could mint a dot that already names a different event.
/// </summary>
/// <param name="Value">The numeric id.</param>
public readonly record struct ReplicaId(ulong Value)
{
    /// <inheritdoc />
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}
