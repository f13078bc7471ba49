using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Core;

public sealed partial class StateMachine
{
    /// <summary>Length of the cluster's peer secret, in bytes (256 bits).</summary>
    public const int PeerSecretSizeBytes = 32;

    private ByteString _peerSecret = ByteString.Empty;

    /// <summary>
    /// The cluster's peer secret (empty until a <see cref="PeerSecretSet"/> command is applied): what
    /// members derive the credential of their calls to each other's internal services from. Never
    /// hand it to a client.
    /// </summary>
    public ByteString PeerSecret => _peerSecret;

    /// <summary>
    /// Forgets the peer secret, for a state restored into a new cluster (<c>arbiter snapshot
    /// restore</c>): its first leader proposes a new one, so the restored cluster does not share a
    /// credential with the cluster the backup came from. Never called on a live member.
    /// </summary>
    public void ForgetPeerSecret() => _peerSecret = ByteString.Empty;

    /// <summary>The first secret in the log wins; a later one changes nothing. A secret of the wrong length is refused.</summary>
    private PeerSecretResult ApplyPeerSecretSet(PeerSecretSet command)
    {
        if (command.Secret.Length != PeerSecretSizeBytes)
        {
            throw new EtcdException(CoreErrors.InvalidPeerSecret);
        }

        if (!_peerSecret.IsEmpty)
        {
            return new PeerSecretResult { Set = false };
        }

        _peerSecret = command.Secret;
        return new PeerSecretResult { Set = true };
    }
}
