using System.Collections.Immutable;
using Arbiter.Protocol.Internal;

namespace Arbiter.Core;

/// <summary>One CRDT replica as the log knows it.</summary>
/// <param name="ReplicaId">The replica id (random per data directory).</param>
/// <param name="MemberId">The member that announced it.</param>
/// <param name="PrunerMemberId">0 while its member is in the cluster; once the member departed, the member that prunes it.</param>
/// <param name="PrunedByMemberIds">Once departed, the members that hold it pruned (the pruner first), ascending; null for none.</param>
/// <param name="Retired">Whether the pruner and every member not departed hold it pruned: its pruned markers are dropped everywhere.</param>
public readonly record struct CrdtReplicaRecord(ulong ReplicaId, ulong MemberId, ulong PrunerMemberId, ImmutableSortedSet<ulong>? PrunedByMemberIds = null, bool Retired = false)
{
    /// <summary>Whether the replica's member has left the cluster.</summary>
    public bool Departed => PrunerMemberId != 0;

    /// <summary>Whether <paramref name="memberId"/> holds this departed replica pruned.</summary>
    public bool PrunedBy(ulong memberId) => PrunedByMemberIds?.Contains(memberId) == true;
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

                // One member fewer may be all a pending retirement waited for.
                RetirePrunedReplicas();
                return new CrdtReplicaResult { Changed = changed };
            case CrdtReplicaCommand.OpOneofCase.Pruned:
                return new CrdtReplicaResult { Changed = ApplyCrdtReplicaPruned(command.Pruned) };
            default:
                throw new EtcdException(CoreErrors.EmptyCommand);
        }
    }

    private bool ApplyCrdtReplicaPruned(CrdtReplicaPruned pruned)
    {
        if (pruned.MemberId == 0 || !_crdtReplicas.TryGetValue(pruned.ReplicaId, out var record) || !record.Departed)
        {
            throw new EtcdException(new EtcdError(ErrorStatusCode.InvalidArgument, "arbiter: only a departed CRDT replica can be acknowledged as pruned, by a member"));
        }

        // The pruner says it first: until it has pruned, nobody else holds the pruning.
        if (pruned.MemberId != record.PrunerMemberId && !record.PrunedBy(record.PrunerMemberId))
        {
            throw new EtcdException(new EtcdError(ErrorStatusCode.FailedPrecondition, "arbiter: the departed CRDT replica's pruner has not pruned it yet"));
        }

        if (record.Retired || record.PrunedBy(pruned.MemberId))
        {
            return false;
        }

        _crdtReplicas[record.ReplicaId] = record with { PrunedByMemberIds = (record.PrunedByMemberIds ?? []).Add(pruned.MemberId) };
        RetirePrunedReplicas();
        return true;
    }

    /// <summary>
    /// Retires every departed replica that its pruner and every member not departed hold pruned
    /// (deterministic: a function of the table alone, evaluated in log order).
    /// </summary>
    private void RetirePrunedReplicas()
    {
        var members = _crdtReplicas.Values.Where(r => !r.Departed).Select(r => r.MemberId).ToHashSet();
        foreach (var record in _crdtReplicas.Values.Where(r => r.Departed && !r.Retired).ToList())
        {
            if (record.PrunedBy(record.PrunerMemberId) && members.All(record.PrunedBy))
            {
                _crdtReplicas[record.ReplicaId] = record with { Retired = true };
            }
        }
    }

    private CrdtReplicaTableImage CaptureCrdtReplicas()
    {
        var image = new CrdtReplicaTableImage();
        foreach (var record in _crdtReplicas.Values)
        {
            var entry = new CrdtReplicaEntry { ReplicaId = record.ReplicaId, MemberId = record.MemberId, PrunerMemberId = record.PrunerMemberId, Retired = record.Retired };
            entry.PrunedByMemberIds.AddRange(record.PrunedByMemberIds ?? []);
            image.Entries.Add(entry);
        }

        return image;
    }

    private void RestoreCrdtReplicas(CrdtReplicaTableImage image)
    {
        foreach (var entry in image.Entries)
        {
            var prunedBy = entry.PrunedByMemberIds.Count == 0 ? null : entry.PrunedByMemberIds.ToImmutableSortedSet();
            if (!_crdtReplicas.TryAdd(entry.ReplicaId, new CrdtReplicaRecord(entry.ReplicaId, entry.MemberId, entry.PrunerMemberId, prunedBy, entry.Retired)))
            {
                throw new InvalidDataException("A CRDT replica appears twice in the snapshot.");
            }
        }
    }
}
