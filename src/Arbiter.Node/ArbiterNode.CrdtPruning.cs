using Arbiter.Core;
using Arbiter.Crdt;
using Arbiter.Protocol.Internal;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node;

/// <summary>
/// The eventual tier's replicas as a consensus fact (docs/crdt.md, "Pruning departed replicas"):
/// each member announces its CRDT replica id through the Raft log; a MemberRemove is followed by a
/// logged departure that names one pruner; the pruner exchanges digests with every other member and
/// folds the departed replicas into its own. The markers the pruning leaves in each key keep late
/// data from the departed replica from counting again, until the replica is retired: the pruner,
/// then every other member once a digest exchange with the pruner brought it the pruning, log that
/// they hold it pruned; when all have, the log retires it and every member drops its markers (and
/// its dots from anything that arrives later). See docs/crdt.md, "Memory and tombstone behaviour".
/// </summary>
public sealed partial class ArbiterNode
{
    /// <summary>How often a member checks the replica table (its announcement, departures to prune, members gone without a logged departure).</summary>
    private const int CrdtMembershipIntervalMs = 1000;

    private Task _crdtMembership = Task.CompletedTask;

    /// <summary>Every CRDT replica announced through the log (replica, member, pruner once departed).</summary>
    public IReadOnlyList<CrdtReplicaRecord> CrdtReplicas => _host.Read(static s => s.CrdtReplicas);

    private void StartCrdtMembership(ILogger logger)
    {
        if (_raft is not null && _antiEntropy is not null)
        {
            _crdtMembership = Task.Run(() => CrdtMembershipLoopAsync(logger, _stopping.Token));
        }
    }

    private async Task CrdtMembershipLoopAsync(ILogger logger, CancellationToken cancellationToken)
    {
        var absentOnce = new HashSet<ulong>();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(CrdtMembershipIntervalMs, cancellationToken).ConfigureAwait(false);
                var replica = CrdtReplica;
                var table = CrdtReplicas;
                if (!table.Any(r => r.ReplicaId == replica.Id.Value))
                {
                    await ProposeAsync(new Command { CrdtReplica = new CrdtReplicaCommand { Announce = new CrdtReplicaAnnounce { MemberId = MemberId, ReplicaId = replica.Id.Value } } }, cancellationToken).ConfigureAwait(false);
                    logger.LogInformation("CRDT replica {Replica:x16} announced for member {Member:x16}", replica.Id.Value, MemberId);
                }

                await RetireCrdtReplicasAsync(table, logger, cancellationToken).ConfigureAwait(false);
                foreach (var departed in table.Where(r => r.Departed && !r.Retired && r.ReplicaId != replica.Id.Value))
                {
                    if (departed.PrunerMemberId == MemberId)
                    {
                        // Again whenever dots of it reach this replica in a key not pruned yet.
                        if (departed.PrunedBy(MemberId) && !replica.HoldsDotsOf(new ReplicaId(departed.ReplicaId)))
                        {
                            continue;
                        }

                        if (!await _antiEntropy!.RepairWithEveryMemberAsync(cancellationToken).ConfigureAwait(false))
                        {
                            break;
                        }

                        var keys = await replica.PruneAsync(new ReplicaId(departed.ReplicaId), cancellationToken).ConfigureAwait(false);
                        logger.LogInformation(
                            "CRDT replica {Replica:x16} of departed member {Member:x16} pruned from {Keys} key(s) into replica {Survivor:x16}",
                            departed.ReplicaId, departed.MemberId, keys, replica.Id.Value);
                    }
                    else if (!departed.PrunedBy(departed.PrunerMemberId) || departed.PrunedBy(MemberId)
                        || !await _antiEntropy!.RepairWithMemberAsync(departed.PrunerMemberId, cancellationToken).ConfigureAwait(false))
                    {
                        // The pruner has not pruned yet, this member said so already, or the pruner did not answer.
                        continue;
                    }

                    // Holds the pruning of every key the pruner pruned (the digest exchange), and no
                    // dot of the departed replica outside them.
                    if (!departed.PrunedBy(MemberId) && !replica.HoldsDotsOf(new ReplicaId(departed.ReplicaId)))
                    {
                        await ProposeAsync(new Command { CrdtReplica = new CrdtReplicaCommand { Pruned = new CrdtReplicaPruned { ReplicaId = departed.ReplicaId, MemberId = MemberId } } }, cancellationToken).ConfigureAwait(false);
                        logger.LogInformation("CRDT replica {Replica:x16} of departed member {Member:x16} held pruned here (logged)", departed.ReplicaId, departed.MemberId);
                    }
                }

                if (_raft!.IsLeader)
                {
                    await DepartMembersGoneFromTheConfigurationAsync(table, absentOnce, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                logger.LogDebug(e, "CRDT replica membership step failed; retrying");
            }
        }
    }

    /// <summary>The replicas the log retired and this replica has not: their markers dropped here, on disk.</summary>
    private async Task RetireCrdtReplicasAsync(IReadOnlyList<CrdtReplicaRecord> table, ILogger logger, CancellationToken cancellationToken)
    {
        var replica = CrdtReplica;
        var retire = table.Where(r => r.Retired && !replica.IsRetired(r.ReplicaId)).Select(r => r.ReplicaId).ToList();
        if (retire.Count == 0)
        {
            return;
        }

        var keys = await replica.RetireAsync(retire, cancellationToken).ConfigureAwait(false);
        logger.LogInformation(
            "CRDT replica(s) {Replicas} retired: pruned markers dropped from {Keys} key(s); {Markers} marker(s) left",
            string.Join(", ", retire.Select(r => r.ToString("x16", System.Globalization.CultureInfo.InvariantCulture))), keys, replica.PrunedMarkerCount);
    }

    /// <summary>
    /// The leader's catch-all for a departure the MemberRemove path did not log (the leader failed
    /// in between): a member with announced replicas that is absent from the configuration on two
    /// checks in a row is departed, pruned by this leader.
    /// </summary>
    private async Task DepartMembersGoneFromTheConfigurationAsync(IReadOnlyList<CrdtReplicaRecord> table, HashSet<ulong> absentOnce, CancellationToken cancellationToken)
    {
        var members = (await _raft!.ListMembersAsync(cancellationToken).ConfigureAwait(false)).Select(m => m.ID).ToHashSet();
        var absent = table.Where(r => !r.Departed && !members.Contains(r.MemberId)).Select(r => r.MemberId).ToHashSet();
        foreach (var member in absent.Where(absentOnce.Contains))
        {
            await ProposeCrdtDepartureAsync(member, members, cancellationToken).ConfigureAwait(false);
        }

        absentOnce.Clear();
        absentOnce.UnionWith(absent);
    }

    /// <summary>Logs that <paramref name="memberId"/> left: its replicas are departed, pruned by this member (or, if this member is the one leaving, the remaining member with the lowest id).</summary>
    private async Task ProposeCrdtDepartureAsync(ulong memberId, IReadOnlyCollection<ulong> remaining, CancellationToken cancellationToken)
    {
        var pruner = memberId != MemberId ? MemberId : remaining.Where(id => id != memberId).DefaultIfEmpty(0UL).Min();
        if (pruner == 0)
        {
            return;
        }

        await ProposeAsync(new Command { CrdtReplica = new CrdtReplicaCommand { Depart = new CrdtReplicaDepart { MemberId = memberId, PrunerMemberId = pruner } } }, cancellationToken).ConfigureAwait(false);
    }
}
