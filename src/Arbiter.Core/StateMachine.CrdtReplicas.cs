using Arbiter.Protocol.Internal;

namespace Arbiter.Core;

/// <summary>One CRDT replica as the log knows it.</summary>
/// <param name="ReplicaId">The replica id (random per data directory).</param>
/// <param name="MemberId">The member that announced it.</param>
/// <param name="PrunerMemberId">0 while its member is in the cluster; once the member departed, the member that prunes it.</param>
public readonly record struct CrdtReplicaRecord(ulong ReplicaId, ulong MemberId, ulong PrunerMemberId)
{
    /// <summary>Whether the replica's member has left the cluster.</summary>
    public bool Departed => PrunerMemberId != 0;
}

public sealed partial class StateMachine
{
    private readonly SortedDictionary<ulong, CrdtReplicaRecord> _crdtReplicas = [];

    /// <summary>Every CRDT replica announced through the log, by replica id ascending (docs/crdt.md, "Pruning departed replicas").</summary>
    public IReadOnlyList<CrdtReplicaRecord> CrdtReplicas => [.. _crdtReplicas.Values];

    private CrdtReplicaResult ApplyCrdtReplica(CrdtReplicaCommand command)
    {
        switch (command.OpCase)
        {
            case CrdtReplicaCommand.OpOneofCase.Announce:
                var announce = command.Announce;
                if (announce.ReplicaId == 0 || announce.MemberId == 0)
                {
                    throw new EtcdException(new EtcdError(ErrorStatusCode.InvalidArgument, "arbiter: a CRDT replica announcement needs a member id and a replica id"));
                }

                // The first announcement of a replica id wins; a replica never changes member.
                return new CrdtReplicaResult { Changed = _crdtReplicas.TryAdd(announce.ReplicaId, new CrdtReplicaRecord(announce.ReplicaId, announce.MemberId, 0)) };
            case CrdtReplicaCommand.OpOneofCase.Depart:
                var depart = command.Depart;
                if (depart.PrunerMemberId == 0 || depart.PrunerMemberId == depart.MemberId)
                {
                    throw new EtcdException(new EtcdError(ErrorStatusCode.InvalidArgument, "arbiter: a departed member's CRDT replicas need another member to prune them"));
                }

                var changed = false;
                foreach (var record in _crdtReplicas.Values.Where(r => r.MemberId == depart.MemberId && !r.Departed).ToList())
                {
                    _crdtReplicas[record.ReplicaId] = record with { PrunerMemberId = depart.PrunerMemberId };
                    changed = true;
                }

                return new CrdtReplicaResult { Changed = changed };
            default:
                throw new EtcdException(CoreErrors.EmptyCommand);
        }
    }

    private CrdtReplicaTableImage CaptureCrdtReplicas()
    {
        var image = new CrdtReplicaTableImage();
        foreach (var record in _crdtReplicas.Values)
        {
            image.Entries.Add(new CrdtReplicaEntry { ReplicaId = record.ReplicaId, MemberId = record.MemberId, PrunerMemberId = record.PrunerMemberId });
        }

        return image;
    }

    private void RestoreCrdtReplicas(CrdtReplicaTableImage image)
    {
        foreach (var entry in image.Entries)
        {
            if (!_crdtReplicas.TryAdd(entry.ReplicaId, new CrdtReplicaRecord(entry.ReplicaId, entry.MemberId, entry.PrunerMemberId)))
            {
                throw new InvalidDataException("A CRDT replica appears twice in the snapshot.");
            }
        }
    }
}
