using Arbiter.Protocol.Internal;

namespace Arbiter.Core;

/// <summary>A MemberAdd acknowledged and not yet settled: the member at <paramref name="PeerUrl"/> is to join.</summary>
/// <param name="PeerUrl">Its canonical peer URL.</param>
/// <param name="MemberId">Its member id (derived from the peer URL and the cluster token).</param>
public readonly record struct PendingMemberAdd(string PeerUrl, ulong MemberId);

public sealed partial class StateMachine
{
    private readonly SortedDictionary<string, ulong> _pendingMemberAdds = new(StringComparer.Ordinal);

    /// <summary>
    /// MemberAdds acknowledged and not settled, by peer URL: whoever leads brings these members in.
    /// Kept in the replicated state so that an add outlives the leader that took it.
    /// </summary>
    public IReadOnlyList<PendingMemberAdd> PendingMemberAdds => [.. _pendingMemberAdds.Select(p => new PendingMemberAdd(p.Key, p.Value))];

    /// <summary>
    /// Forgets the pending member adds, for a state restored into a new cluster (<c>arbiter snapshot
    /// restore</c>): they name members of the cluster the backup came from. Never called on a live member.
    /// </summary>
    public void ForgetPendingMemberAdds() => _pendingMemberAdds.Clear();

    private MemberAddResult ApplyMemberAdd(MemberAddCommand command)
    {
        switch (command.OpCase)
        {
            case MemberAddCommand.OpOneofCase.Pending when command.Pending.PeerUrl.Length > 0:
                {
                    var pending = command.Pending;
                    var changed = !_pendingMemberAdds.TryGetValue(pending.PeerUrl, out var id) || id != pending.MemberId;
                    _pendingMemberAdds[pending.PeerUrl] = pending.MemberId;
                    return new MemberAddResult { Changed = changed };
                }

            case MemberAddCommand.OpOneofCase.Settled when command.Settled.PeerUrl.Length > 0:
                return new MemberAddResult { Changed = _pendingMemberAdds.Remove(command.Settled.PeerUrl) };
            default:
                throw new EtcdException(CoreErrors.EmptyCommand);
        }
    }

    private PendingMemberAddsImage CapturePendingMemberAdds()
    {
        var image = new PendingMemberAddsImage();
        foreach (var (peerUrl, memberId) in _pendingMemberAdds)
        {
            image.Pending.Add(new MemberAddPending { PeerUrl = peerUrl, MemberId = memberId });
        }

        return image;
    }

    private void RestorePendingMemberAdds(PendingMemberAddsImage image)
    {
        foreach (var pending in image.Pending)
        {
            if (pending.PeerUrl.Length == 0 || !_pendingMemberAdds.TryAdd(pending.PeerUrl, pending.MemberId))
            {
                throw new InvalidDataException("A pending member add appears twice in the snapshot, or without a peer URL.");
            }
        }
    }
}
