using System.Security.Cryptography;
using System.Text;
using Google.Protobuf;

namespace Arbiter.Node.Security;

/// <summary>
/// What a member's calls to another member's <c>arbiter.internal.v1</c> services carry to prove it
/// is a member: a value derived from the cluster's peer secret (a random 256-bit value replicated
/// through the Raft log, see <c>PeerSecretSet</c>), sent in the <see cref="HeaderName"/> metadata
/// header and compared in constant time.
/// </summary>
/// <remarks>
/// A fixed credential rather than a per-call MAC over a timestamp or nonce: without peer TLS the
/// secret itself travels in clear inside the Raft log on the peer port (as every write, token and
/// bcrypt hash does), so whoever can watch members' traffic learns it whatever the client port
/// sends, and a per-call MAC would protect nothing more while adding clock-skew failures. What the
/// credential closes is the client port: someone who can reach it but not watch member traffic
/// can no longer act as a member. With peer TLS the wire is encrypted and the certificate is
/// checked as well. The credential is derived (HMAC-SHA256 of a fixed label) so the secret itself
/// is never put on the wire by these calls and can be used for other derivations later.
/// </remarks>
public static class PeerCredential
{
    /// <summary>The gRPC metadata header (lower case, as HTTP/2 sends it) the credential travels in.</summary>
    public const string HeaderName = "arbiter-peer-credential";

    /// <summary>The gRPC path prefix of the member-to-member services on the client port.</summary>
    public const string InternalServicePrefix = "/arbiter.internal.v1.";

    private static ReadOnlySpan<byte> Label => "arbiter.internal.v1 peer call credential"u8;

    /// <summary>The credential derived from <paramref name="secret"/>: base64url of HMAC-SHA256(secret, label), 43 characters.</summary>
    public static string Derive(ByteString secret)
    {
        ArgumentNullException.ThrowIfNull(secret);
        if (secret.IsEmpty)
        {
            throw new ArgumentException("No peer secret to derive a credential from.", nameof(secret));
        }

        return Convert.ToBase64String(HMACSHA256.HashData(secret.Span, Label)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>Whether <paramref name="presented"/> equals <paramref name="expected"/>, in time that does not depend on where they differ.</summary>
    public static bool Matches(string? presented, string expected)
    {
        ArgumentNullException.ThrowIfNull(expected);
        if (presented is null)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(presented), Encoding.ASCII.GetBytes(expected));
    }
}

/// <summary>
/// Adds this member's peer credential to every call it makes to another member's internal
/// services. Without one (this member has not yet applied the cluster's peer secret: a member that
/// just joined, or a cluster whose first leader has not proposed it yet) the call is not sent and
/// fails as a connection failure would, so the caller retries and, at worst, answers "no leader".
/// </summary>
/// <remarks>The one exception is the snapshot image fetch, which a member catching up needs before it can know the secret (the image carries it); that call proves itself with the image's SHA-256.</remarks>
internal sealed class PeerCredentialHandler(Func<string?> credential, HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private const string FetchSnapshotImagePath = "/arbiter.internal.v1.Peer/FetchSnapshotImage";

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri?.AbsolutePath;
        if (path is not null && path.StartsWith(PeerCredential.InternalServicePrefix, StringComparison.Ordinal) && (credential() is not null || path != FetchSnapshotImagePath))
        {
            var value = credential() ?? throw new HttpRequestException(
                HttpRequestError.ConnectionError,
                "this member has not learned the cluster's peer secret yet (it arrives through the Raft log); not sent");
            request.Headers.TryAddWithoutValidation(PeerCredential.HeaderName, value);
        }

        return base.SendAsync(request, cancellationToken);
    }
}
