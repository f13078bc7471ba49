using System.Security.Cryptography;
using System.Text;
using Arbiter.Server.Auth;

namespace Arbiter.Server.Tests.Auth;

/// <summary>JWT tokens: etcd's claims round-trip; forged, expired, re-signed and other-algorithm tokens are refused; --auth-token parsing.</summary>
public sealed class JwtTokensTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("arbiter-jwt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (string Pub, string Priv) WriteRsaKeys(string name)
    {
        using var rsa = RSA.Create(2048);
        var pub = Path.Combine(_dir, name + ".pub");
        var priv = Path.Combine(_dir, name + ".key");
        File.WriteAllText(pub, rsa.ExportSubjectPublicKeyInfoPem());
        File.WriteAllText(priv, rsa.ExportPkcs8PrivateKeyPem());
        return (pub, priv);
    }

    private (string Pub, string Priv) WriteEcKeys(string name)
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pub = Path.Combine(_dir, name + ".pub");
        var priv = Path.Combine(_dir, name + ".key");
        File.WriteAllText(pub, ec.ExportSubjectPublicKeyInfoPem());
        File.WriteAllText(priv, ec.ExportPkcs8PrivateKeyPem());
        return (pub, priv);
    }

    [Theory]
    [InlineData("RS256")]
    [InlineData("PS384")]
    [InlineData("ES256")]
    public void ClaimsRoundTripAndTamperingIsRefused(string method)
    {
        var (pub, priv) = method.StartsWith("ES", StringComparison.Ordinal) ? WriteEcKeys("a") : WriteRsaKeys("a");
        var options = AuthOptions.ParseAuthToken($"jwt,pub-key={pub},priv-key={priv},sign-method={method},ttl=5m");
        using var tokens = JwtTokens.Create(options.Jwt!);
        var now = DateTimeOffset.UtcNow;
        var token = tokens.Sign("alice", 7, now);
        Assert.Equal(("alice", 7ul), tokens.Verify(token, now));

        // Expired: etcd's exp claim.
        Assert.Null(tokens.Verify(token, now.AddMinutes(6)));

        // Forged claims with the old signature.
        var parts = token.Split('.');
        var forgedClaims = JwtTokens.Base64Url(Encoding.UTF8.GetBytes($"{{\"exp\":{now.AddHours(1).ToUnixTimeSeconds()},\"revision\":7,\"username\":\"root\"}}"));
        Assert.Null(tokens.Verify($"{parts[0]}.{forgedClaims}.{parts[2]}", now));

        // "alg": "none" and garbage.
        var none = JwtTokens.Base64Url("{\"alg\":\"none\",\"typ\":\"JWT\"}"u8.ToArray());
        Assert.Null(tokens.Verify($"{none}.{forgedClaims}.", now));
        Assert.Null(tokens.Verify("not-a-token", now));
        Assert.Null(tokens.Verify("a.b.c", now));

        // Signed with another key.
        var (otherPub, otherPriv) = method.StartsWith("ES", StringComparison.Ordinal) ? WriteEcKeys("b") : WriteRsaKeys("b");
        using var other = JwtTokens.Create(AuthOptions.ParseAuthToken($"jwt,pub-key={otherPub},priv-key={otherPriv},sign-method={method}").Jwt!);
        Assert.Null(tokens.Verify(other.Sign("root", 7, now), now));
    }

    [Fact]
    public void HmacSecretSignsAndVerifies()
    {
        var secret = Path.Combine(_dir, "secret");
        File.WriteAllText(secret, "a-shared-secret");
        using var tokens = JwtTokens.Create(AuthOptions.ParseAuthToken($"jwt,priv-key={secret},sign-method=HS256").Jwt!);
        var now = DateTimeOffset.UtcNow;
        Assert.Equal(("bob", 3ul), tokens.Verify(tokens.Sign("bob", 3, now), now));
    }

    [Theory]
    [InlineData("bogus", "neither 'simple' nor 'jwt")]
    [InlineData("simple,ttl=5m", "neither 'simple' nor 'jwt")]
    [InlineData("jwt,sign-method=RS256", "needs pub-key and priv-key")]
    [InlineData("jwt,pub-key=/nonexistent/key,priv-key=/nonexistent/key,sign-method=RS256", "cannot read key file")]
    [InlineData("jwt,sign-method=XX999", "sign-method 'XX999'")]
    [InlineData("jwt,colour=blue", "unknown jwt option 'colour'")]
    public void BadAuthTokenValuesAreRefusedWithAClearMessage(string value, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => AuthOptions.ParseAuthToken(value));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MismatchedKeysAreRefused()
    {
        var (pub, _) = WriteRsaKeys("a");
        var (_, priv) = WriteRsaKeys("b");
        var e = Assert.Throws<ArgumentException>(() => AuthOptions.ParseAuthToken($"jwt,pub-key={pub},priv-key={priv},sign-method=RS256"));
        Assert.Contains("don't match", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("300s", 300)]
    [InlineData("5m", 300)]
    [InlineData("1h30m", 5400)]
    [InlineData("1.5h", 5400)]
    public void TtlsParseAsGoDurations(string text, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), JwtOptions.ParseGoDuration(text));
}
