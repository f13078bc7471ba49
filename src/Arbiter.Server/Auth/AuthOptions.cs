using System.Globalization;
using System.Security.Cryptography;

namespace Arbiter.Server.Auth;

/// <summary>The kind of token Authenticate hands out (etcd's <c>--auth-token</c>).</summary>
public enum AuthTokenKind
{
    /// <summary>etcd's simple tokens: a random string and the log index, assigned through the log, valid on every member, expiring after the TTL unused.</summary>
    Simple,

    /// <summary>Signed JSON Web Tokens carrying the user, the auth revision and an expiry; nothing stored.</summary>
    Jwt,
}

/// <summary>Authentication settings of a member: token kind and TTLs, bcrypt cost, and whether client certificates name users.</summary>
public sealed record AuthOptions
{
    /// <summary>etcd's default bcrypt cost.</summary>
    public const int BcryptCostDefault = 10;

    /// <summary>The token kind.</summary>
    public AuthTokenKind TokenKind { get; init; } = AuthTokenKind.Simple;

    /// <summary>How long a simple token lives unused, in seconds (etcd's <c>--auth-token-ttl</c>, default 300); each use renews it.</summary>
    public int SimpleTokenTtlSeconds { get; init; } = 300;

    /// <summary>bcrypt cost for new password hashes (etcd's <c>--bcrypt-cost</c>, 4–31, default 10).</summary>
    public int BcryptCost { get; init; } = BcryptCostDefault;

    /// <summary>The JWT settings when <see cref="TokenKind"/> is <see cref="AuthTokenKind.Jwt"/>.</summary>
    public JwtOptions? Jwt { get; init; }

    /// <summary>
    /// Whether a client certificate's common name is the user of a request without a token (etcd's
    /// rule under <c>--client-cert-auth</c>). Set only when the TLS layer verifies client certificates.
    /// </summary>
    public bool ClientCertificateNamesUser { get; init; }

    /// <summary>
    /// Parses etcd's <c>--auth-token</c> value: <c>simple</c>, or
    /// <c>jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m</c>. Reads the key files.
    /// </summary>
    /// <exception cref="ArgumentException">The value, a key file or a sign method is invalid (the message says which).</exception>
    public static AuthOptions ParseAuthToken(string value, AuthOptions? baseOptions = null)
    {
        ArgumentNullException.ThrowIfNull(value);
        var options = baseOptions ?? new AuthOptions();
        var parts = value.Split(',');
        switch (parts[0])
        {
            case "simple" when parts.Length == 1:
                return options with { TokenKind = AuthTokenKind.Simple, Jwt = null };
            case "jwt":
                return options with { TokenKind = AuthTokenKind.Jwt, Jwt = JwtOptions.Parse(parts.AsSpan(1)) };
            default:
                throw new ArgumentException($"--auth-token: '{value}' is neither 'simple' nor 'jwt,pub-key=...,priv-key=...,sign-method=...[,ttl=...]'");
        }
    }
}

/// <summary>JWT signing settings (etcd's <c>--auth-token jwt,...</c> options).</summary>
public sealed record JwtOptions
{
    /// <summary>The algorithms supported, as etcd's (RSA, RSA-PSS, ECDSA, HMAC).</summary>
    public static readonly IReadOnlyList<string> SignMethods = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"];

    /// <summary>The JWS algorithm, e.g. RS256.</summary>
    public required string SignMethod { get; init; }

    /// <summary>Lifetime of a token (etcd's default 5 minutes).</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The public key in PEM (RSA/ECDSA), or null for HMAC.</summary>
    public string? PublicKeyPem { get; init; }

    /// <summary>The private key in PEM (RSA/ECDSA) or the HMAC secret bytes' file content; null: verify only.</summary>
    public string? PrivateKeyPem { get; init; }

    internal static JwtOptions Parse(ReadOnlySpan<string> pairs)
    {
        string? pub = null, priv = null, method = null;
        var ttl = TimeSpan.FromMinutes(5);
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"--auth-token: option '{pair}' is not key=value");
            }

            var key = pair[..eq];
            var val = pair[(eq + 1)..];
            switch (key)
            {
                case "pub-key":
                    pub = ReadKeyFile(val);
                    break;
                case "priv-key":
                    priv = ReadKeyFile(val);
                    break;
                case "sign-method":
                    method = val;
                    break;
                case "ttl":
                    ttl = ParseGoDuration(val);
                    break;
                default:
                    throw new ArgumentException($"--auth-token: unknown jwt option '{key}' (pub-key, priv-key, sign-method, ttl)");
            }
        }

        if (method is null || !SignMethods.Contains(method))
        {
            throw new ArgumentException($"--auth-token: sign-method '{method}' is not one of {string.Join(", ", SignMethods)}");
        }

        if (method.StartsWith("HS", StringComparison.Ordinal) ? priv is null : pub is null && priv is null)
        {
            throw new ArgumentException("--auth-token: jwt needs pub-key and priv-key (priv-key alone, the secret, for HS*)");
        }

        var options = new JwtOptions { SignMethod = method, PublicKeyPem = pub, PrivateKeyPem = priv, Ttl = ttl };
        using var signer = JwtTokens.Create(options);
        return options;
    }

    private static string ReadKeyFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"--auth-token: cannot read key file '{path}': {e.Message}", e);
        }
    }

    /// <summary>Go's time.ParseDuration for the forms etcd users write (e.g. 300s, 5m, 1h30m, 1.5h).</summary>
    internal static TimeSpan ParseGoDuration(string text)
    {
        var total = 0.0;
        var i = 0;
        if (text.Length == 0)
        {
            throw new ArgumentException("--auth-token: empty ttl");
        }

        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'))
            {
                i++;
            }

            var unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i]))
            {
                i++;
            }

            if (start == unitStart || !double.TryParse(text.AsSpan(start, unitStart - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                throw new ArgumentException($"--auth-token: ttl '{text}' is not a duration such as 300s or 5m");
            }

            total += text[unitStart..i] switch
            {
                "ms" => number / 1000,
                "s" => number,
                "m" => number * 60,
                "h" => number * 3600,
                _ => throw new ArgumentException($"--auth-token: ttl '{text}' has an unknown unit (ms, s, m, h)"),
            };
        }

        return total > 0 ? TimeSpan.FromSeconds(total) : throw new ArgumentException($"--auth-token: ttl '{text}' must be positive");
    }
}
