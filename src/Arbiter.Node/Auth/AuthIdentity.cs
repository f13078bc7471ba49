namespace Arbiter.Node.Auth;

/// <summary>
/// Who a request is from, once its token (or client certificate) was checked: the user and the
/// auth store revision the check saw (etcd's AuthInfo).
/// </summary>
/// <param name="User">The user name.</param>
/// <param name="Revision">The auth revision the token was checked at (a later auth change makes the request fail with "revision of auth store is old").</param>
public sealed record AuthIdentity(string User, ulong Revision)
{
    /// <summary>
    /// The identity of a Watch stream whose token was invalid: etcd opens the stream and cancels
    /// each watch created on it with "invalid auth token", instead of failing the call.
    /// </summary>
    public static readonly AuthIdentity InvalidToken = new(string.Empty, 0);
}

/// <summary>
/// The identity of the request being served, carried along its async flow: the API layer sets it
/// once per call, the node stamps it into every command it proposes for the call (so the core
/// checks the command for that user at apply) and checks reads with it. Null: no credentials.
/// </summary>
public static class CallIdentity
{
    private static readonly AsyncLocal<AuthIdentity?> CurrentIdentity = new();

    /// <summary>The identity of the call in progress, or null.</summary>
    public static AuthIdentity? Current
    {
        get => CurrentIdentity.Value;
        set => CurrentIdentity.Value = value;
    }
}
