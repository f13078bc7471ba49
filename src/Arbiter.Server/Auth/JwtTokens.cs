using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Arbiter.Server.Auth;

/// <summary>
/// Signs and verifies etcd's JWT auth tokens: header {"alg","typ":"JWT"}, claims
/// {"exp","revision","username"} (etcd's), compact JWS serialization.
/// </summary>
public sealed class JwtTokens : IDisposable
{
    private readonly JwtOptions _options;
    private readonly RSA? _rsa;
    private readonly ECDsa? _ecdsa;
    private readonly byte[]? _secret;
    private readonly HashAlgorithmName _hash;
    private readonly string _encodedHeader;

    private JwtTokens(JwtOptions options)
    {
        _options = options;
        _hash = options.SignMethod[2..] switch
        {
            "256" => HashAlgorithmName.SHA256,
            "384" => HashAlgorithmName.SHA384,
            _ => HashAlgorithmName.SHA512,
        };
        switch (options.SignMethod[..2])
        {
            case "RS" or "PS":
                _rsa = RSA.Create();
                _rsa.ImportFromPem(options.PrivateKeyPem ?? options.PublicKeyPem);
                if (options.PrivateKeyPem is not null && options.PublicKeyPem is not null)
                {
                    using var pub = RSA.Create();
                    pub.ImportFromPem(options.PublicKeyPem);
                    if (!pub.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(_rsa.ExportSubjectPublicKeyInfo()))
                    {
                        throw new ArgumentException("--auth-token: public and private keys don't match");
                    }
                }

                break;
            case "ES":
                _ecdsa = ECDsa.Create();
                _ecdsa.ImportFromPem(options.PrivateKeyPem ?? options.PublicKeyPem);
                if (options.PrivateKeyPem is not null && options.PublicKeyPem is not null)
                {
                    using var pub = ECDsa.Create();
                    pub.ImportFromPem(options.PublicKeyPem);
                    if (!pub.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(_ecdsa.ExportSubjectPublicKeyInfo()))
                    {
                        throw new ArgumentException("--auth-token: public and private keys don't match");
                    }
                }

                break;
            default:
                _secret = Encoding.UTF8.GetBytes(options.PrivateKeyPem!);
                break;
        }

        _encodedHeader = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["alg"] = options.SignMethod, ["typ"] = "JWT" }));
    }

    /// <summary>Loads the keys of <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">A key does not parse or the pair does not match.</exception>
    public static JwtTokens Create(JwtOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            return new JwtTokens(options);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException($"--auth-token: the {options.SignMethod} key does not load: {e.Message}", e);
        }
    }

    /// <summary>Whether this member can sign (it has the private key or secret).</summary>
    public bool CanSign => _secret is not null || _options.PrivateKeyPem is not null;

    /// <summary>A token for <paramref name="user"/> at auth revision <paramref name="revision"/>, expiring after the TTL.</summary>
    public string Sign(string user, ulong revision, DateTimeOffset now)
    {
        if (!CanSign)
        {
            throw new InvalidOperationException("auth: token signing attempted with verify-only key");
        }

        var claims = new SortedDictionary<string, object>(StringComparer.Ordinal)
        {
            ["exp"] = (now + _options.Ttl).ToUnixTimeSeconds(),
            ["revision"] = revision,
            ["username"] = user,
        };
        var signingInput = _encodedHeader + "." + Base64Url(JsonSerializer.SerializeToUtf8Bytes(claims));
        return signingInput + "." + Base64Url(SignBytes(Encoding.ASCII.GetBytes(signingInput)));
    }

    /// <summary>The user and revision of a valid, unexpired token signed with this key; null otherwise (forged, expired, malformed, another algorithm).</summary>
    public (string User, ulong Revision)? Verify(string token, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(token);
        var parts = token.Split('.');
        if (parts.Length != 3 || token.Length > 16 * 1024)
        {
            return null;
        }

        try
        {
            using var header = JsonDocument.Parse(FromBase64Url(parts[0]));
            if (!header.RootElement.TryGetProperty("alg", out var alg) || alg.GetString() != _options.SignMethod)
            {
                return null;
            }

            if (!VerifyBytes(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), FromBase64Url(parts[2])))
            {
                return null;
            }

            using var claims = JsonDocument.Parse(FromBase64Url(parts[1]));
            var root = claims.RootElement;
            if (!root.TryGetProperty("exp", out var exp) || !exp.TryGetDouble(out var expSeconds) || expSeconds <= now.ToUnixTimeSeconds()
                || !root.TryGetProperty("username", out var username) || username.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("revision", out var revision) || !revision.TryGetDouble(out var revisionNumber) || revisionNumber < 0)
            {
                return null;
            }

            return (username.GetString()!, (ulong)revisionNumber);
        }
        catch (Exception e) when (e is FormatException or JsonException or CryptographicException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _rsa?.Dispose();
        _ecdsa?.Dispose();
    }

    private byte[] SignBytes(byte[] data) => _options.SignMethod[..2] switch
    {
        "RS" => _rsa!.SignData(data, _hash, RSASignaturePadding.Pkcs1),
        "PS" => _rsa!.SignData(data, _hash, RSASignaturePadding.Pss),
        "ES" => _ecdsa!.SignData(data, _hash, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
        _ => Hmac(data),
    };

    private bool VerifyBytes(byte[] data, byte[] signature) => _options.SignMethod[..2] switch
    {
        "RS" => _rsa!.VerifyData(data, signature, _hash, RSASignaturePadding.Pkcs1),
        "PS" => _rsa!.VerifyData(data, signature, _hash, RSASignaturePadding.Pss),
        "ES" => _ecdsa!.VerifyData(data, signature, _hash, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
        _ => CryptographicOperations.FixedTimeEquals(Hmac(data), signature),
    };

    private byte[] Hmac(byte[] data) => _hash.Name switch
    {
        "SHA256" => HMACSHA256.HashData(_secret!, data),
        "SHA384" => HMACSHA384.HashData(_secret!, data),
        _ => HMACSHA512.HashData(_secret!, data),
    };

    internal static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    internal static byte[] FromBase64Url(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s + new string('=', (4 - (s.Length % 4)) % 4));
    }
}
