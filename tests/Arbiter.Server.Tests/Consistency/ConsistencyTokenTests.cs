using Arbiter.Protocol.Consistency;

namespace Arbiter.Server.Tests.Consistency;

/// <summary>The token's string form: round trip, merge, and refusal of everything that is not a token.</summary>
public sealed class ConsistencyTokenTests
{
    [Theory]
    [InlineData(0UL, 0L)]
    [InlineData(1UL, 1L)]
    [InlineData(0xdeadbeefcafef00dUL, 123_456_789L)]
    [InlineData(ulong.MaxValue, long.MaxValue)]
    public void A_token_survives_its_string_form(ulong clusterId, long revision)
    {
        var token = new ConsistencyToken(clusterId, revision);
        var text = token.ToString();

        Assert.StartsWith(ConsistencyToken.FormatPrefix, text, StringComparison.Ordinal);
        Assert.True(text.Length <= ConsistencyToken.StringLengthMax);
        Assert.Equal(token, ConsistencyToken.Parse(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("arb1.")]
    [InlineData("arb1.0000000000000001")]
    [InlineData("arb1.0000000000000001.")]
    [InlineData("arb1.1.5")]
    [InlineData("arb2.0000000000000001.5")]
    [InlineData("ARB1.0000000000000001.5")]
    [InlineData("arb1.000000000000000g.5")]
    [InlineData("arb1.0000000000000001.-5")]
    [InlineData("arb1.0000000000000001.5 ")]
    [InlineData("arb1.0000000000000001.ffffffffffffffff")]
    [InlineData("arb1.0000000000000001.5.6")]
    [InlineData("hello")]
    public void Anything_else_is_refused_as_malformed(string text)
    {
        Assert.False(ConsistencyToken.TryParse(text, out _));
        var error = Assert.Throws<ConsistencyException>(() => ConsistencyToken.Parse(text));
        Assert.Equal(ConsistencyErrorKind.MalformedToken, error.Kind);
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public void An_overlong_string_is_refused_without_being_echoed()
    {
        var text = ConsistencyToken.FormatPrefix + new string('0', 10_000);
        var error = Assert.Throws<ConsistencyException>(() => ConsistencyToken.Parse(text));
        Assert.True(error.Message.Length < 300, error.Message);
    }

    [Fact]
    public void Merging_keeps_the_later_revision_and_refuses_another_cluster()
    {
        var a = new ConsistencyToken(7, 10);
        Assert.Equal(new ConsistencyToken(7, 12), a.Merge(new ConsistencyToken(7, 12)));
        Assert.Equal(a, a.Merge(new ConsistencyToken(7, 3)));
        var error = Assert.Throws<ConsistencyException>(() => a.Merge(new ConsistencyToken(8, 3)));
        Assert.Equal(ConsistencyErrorKind.OtherClusterToken, error.Kind);
    }

    [Fact]
    public void Metadata_round_trips_every_level()
    {
        var token = new ConsistencyToken(5, 9);
        foreach (var consistency in new[]
        {
            ReadConsistency.Linearizable,
            ReadConsistency.Serializable,
            ReadConsistency.Session(token),
            ReadConsistency.Session(null),
            ReadConsistency.Causal(token),
            ReadConsistency.BoundedStaleness(TimeSpan.FromMilliseconds(250), 3),
            ReadConsistency.AtRevision(4),
        })
        {
            var metadata = ConsistencyMetadata.Encode(consistency).ToDictionary(p => p.Key, p => p.Value);
            Assert.Equal(consistency, ConsistencyMetadata.Decode(k => metadata.GetValueOrDefault(k)));
        }

        Assert.Null(ConsistencyMetadata.Decode(_ => null));
    }

    [Theory]
    [InlineData("eventually")]
    [InlineData("causal")]
    [InlineData("bounded")]
    [InlineData("at-revision")]
    public void Metadata_that_misses_what_its_level_needs_is_refused(string level)
    {
        var error = Assert.Throws<ConsistencyException>(() => ConsistencyMetadata.Decode(k => k == ConsistencyMetadata.LevelKey ? level : null));
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
    }
}
