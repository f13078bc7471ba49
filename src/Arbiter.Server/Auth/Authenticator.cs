using System.Security.Cryptography;
using Arbiter.Core;
using Arbiter.Core.Auth;
using Arbiter.Node;
using Arbiter.Node.Auth;
using Arbiter.Protocol.Internal;

namespace Arbiter.Server.Auth;

/// <summary>
/// The edge of authentication on one member: checks passwords (bcrypt, here and never in the
/// core), issues tokens (simple ones through the log, or JWTs), and turns a token into the
/// <see cref="AuthIdentity"/> the node and the core check requests with.
/// </summary>
public sealed class Authenticator : IDisposable
{
    private const string Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private const int SimpleTokenPrefixLength = 16;
    private const int AuthenticateAttemptsMax = 5;

    private readonly ArbiterNode _node;
    private readonly JwtTokens? _jwt;
    private readonly string _dummyHash;

    /// <summary>Creates the authenticator of <paramref name="node"/>.</summary>
    public Authenticator(ArbiterNode node, AuthOptions options)
    {
        _node = node ?? throw new ArgumentNullException(nameof(node));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Keeper = new SimpleTokenKeeper(TimeSpan.FromSeconds(options.SimpleTokenTtlSeconds));
        _jwt = options.TokenKind == AuthTokenKind.Jwt ? JwtTokens.Create(options.Jwt ?? throw new ArgumentException("JWT tokens need JwtOptions", nameof(options))) : null;

        // Unknown users and users without a password are checked against this hash, at the same
        // cost, so that a wrong name takes as long as a wrong password.
        _dummyHash = BCrypt.Net.BCrypt.HashPassword(Convert.ToHexString(RandomNumberGenerator.GetBytes(16)), options.BcryptCost);
    }

    /// <summary>The settings.</summary>
    public AuthOptions Options { get; }

    /// <summary>This member's simple token TTLs.</summary>
    public SimpleTokenKeeper Keeper { get; }

    /// <summary>Hashes a password for the log (bcrypt at the configured cost).</summary>
    public byte[] HashPassword(string password) =>
        System.Text.Encoding.ASCII.GetBytes(BCrypt.Net.BCrypt.HashPassword(password ?? string.Empty, Options.BcryptCost));

    /// <summary>
    /// etcd's Authenticate: a linearizable look at the user, the password checked against its hash
    /// (or a dummy one: no fast path for unknown names), then a token: a simple one assigned
    /// through the log (retried if the auth store changed meanwhile, as etcd), or a JWT.
    /// </summary>
    /// <exception cref="EtcdException">Auth off, or wrong user or password.</exception>
    public async Task<string> AuthenticateAsync(string name, string password, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var (enabled, hash, revision) = await _node.ReadAuthLinearizableAsync(
                s => (s.Enabled, s.FindUser(name ?? string.Empty) is { Options.NoPassword: false } u ? u.Password.ToStringUtf8() : null, s.Revision),
                cancellationToken).ConfigureAwait(false);
            if (!enabled)
            {
                throw new EtcdException(AuthErrors.AuthNotEnabled);
            }

            if (!CheckPassword(password ?? string.Empty, hash))
            {
                throw new EtcdException(AuthErrors.AuthFailed);
            }

            if (_jwt is not null)
            {
                return _jwt.Sign(name!, revision, DateTimeOffset.UtcNow);
            }

            var result = await _node.ProposeAuthAsync(
                new AuthCommand { TokenAssign = new AuthTokenAssign { Name = name, Token = NewTokenPrefix(), CheckedRevision = revision } },
                cancellationToken).ConfigureAwait(false);
            if (result.AuthRevision == revision || attempt + 1 >= AuthenticateAttemptsMax)
            {
                Keeper.Add(result.Token);
                return result.Token;
            }
        }
    }

    /// <summary>
    /// The identity a token names, or etcd's "invalid auth token" (unknown, expired, forged,
    /// malformed, or auth disabled since it was issued). Simple tokens are checked against the
    /// replicated store (after a read barrier if this member has not applied the token yet) and
    /// this member's TTL; JWTs by signature and expiry.
    /// </summary>
    public async ValueTask<AuthIdentity> ResolveAsync(string token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_jwt is not null)
        {
            return _jwt.Verify(token, DateTimeOffset.UtcNow) is { } claims
                ? new AuthIdentity(claims.User, claims.Revision)
                : throw new EtcdException(AuthErrors.InvalidAuthToken);
        }

        if (token.Length > 128 || token.LastIndexOf('.') is var dot && (dot <= 0 || !long.TryParse(token.AsSpan(dot + 1), out _)))
        {
            throw new EtcdException(AuthErrors.InvalidAuthToken);
        }

        var found = _node.ReadAuth(s => (User: s.TokenUser(token), s.Revision));
        if (found.User is null)
        {
            // Assigned through another member and not applied here yet (etcd waits for the index too).
            await _node.ReadAuthLinearizableAsync(static _ => 0, cancellationToken).ConfigureAwait(false);
            found = _node.ReadAuth(s => (User: s.TokenUser(token), s.Revision));
        }

        if (found.User is null || !Keeper.TryUse(token))
        {
            throw new EtcdException(AuthErrors.InvalidAuthToken);
        }

        return new AuthIdentity(found.User, found.Revision);
    }

    /// <inheritdoc />
    public void Dispose() => _jwt?.Dispose();

    private static string NewTokenPrefix()
    {
        Span<char> chars = stackalloc char[SimpleTokenPrefixLength];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = Letters[RandomNumberGenerator.GetInt32(Letters.Length)];
        }

        return new string(chars);
    }

    private bool CheckPassword(string password, string? hash)
    {
        if (hash is null)
        {
            BCrypt.Net.BCrypt.Verify(password, _dummyHash);
            return false;
        }

        try
        {
            return BCrypt.Net.BCrypt.Verify(password, hash);
        }
        catch (BCrypt.Net.SaltParseException)
        {
            return false;
        }
    }
}
