using System.Security.Cryptography;
using Arbiter.Core;
using Arbiter.Protocol.Internal;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    /// <summary>
    /// The credential members' calls to each other's <c>arbiter.internal.v1</c> services must carry
    /// (<see cref="Security.PeerCredential"/>), derived from the cluster's peer secret; null until
    /// this member has applied one. For the server's guard of those services: never hand it to a
    /// client, never log it.
    /// </summary>
    public string? PeerCredential => _host.PeerCredential;

    /// <summary>
    /// A cluster (or single node) whose state has no peer secret gets one from its leader: a new
    /// cluster, a data directory from before the secret existed, a restored backup. Called by the
    /// leader's loop after it renewed the leases in its term, so its state includes every entry
    /// of earlier terms and a secret already in the log has been applied. True once there is one.
    /// </summary>
    private async Task<bool> EnsurePeerSecretAsync(CancellationToken token)
    {
        if (_host.PeerCredential is not null || !_log.IsLeader)
        {
            // A follower learns it from the log (or a snapshot); it has nothing to propose.
            return true;
        }

        try
        {
            // Chosen here, at the edge; the core keeps the first one applied (another leader's may win).
            var command = new Command { PeerSecretSet = new PeerSecretSet { Secret = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(StateMachine.PeerSecretSizeBytes)) } };
            var result = await ProposeAsync(command, token, leaderOnly: true).ConfigureAwait(false);
            if (result.PeerSecretSet.Set)
            {
                _logger.LogInformation("Created the cluster's peer secret");
            }
            return true;
        }
        catch (EtcdException e)
        {
            _logger.LogWarning("Creating the cluster's peer secret failed: {Message}", e.Message);
            await Task.Delay(Options.LeaseCheckIntervalMsMax, token).ConfigureAwait(false);
            return false;
        }
    }
}
