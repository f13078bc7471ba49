namespace Arbiter.Compatibility.Tests.Etcdctl;

/// <summary>etcdctl pads ids with spaces (<c>%16x</c>); the parser must find the id whatever its length.</summary>
public sealed class EtcdctlOutputTests
{
    [Theory]
    [InlineData("Member 8e9e05c52164694d added to cluster cdf818194e3a8c32", "8e9e05c52164694d")]
    [InlineData("Member  e9e05c52164694d added to cluster cdf818194e3a8c32", "e9e05c52164694d")]
    [InlineData("Member                a added to cluster  df818194e3a8c32", "a")]
    [InlineData("Member  e9e05c52164694d removed from cluster cdf818194e3a8c32", "e9e05c52164694d")]
    [InlineData("Member 8e9e05c52164694d updated in cluster cdf818194e3a8c32\n", "8e9e05c52164694d")]
    public void Member_id_is_found_however_it_is_padded(string line, string expected)
    {
        Assert.Equal(expected, EtcdctlOutput.MemberId(line));
        Assert.Equal(Convert.ToUInt64(expected, 16), EtcdctlOutput.MemberIdValue(line));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Member added to cluster cdf818194e3a8c32")]
    [InlineData("8e9e05c52164694d, started, a, http://127.0.0.1:2380, http://127.0.0.1:2379, false")]
    public void Other_lines_are_refused_with_the_line(string line)
    {
        var error = Assert.Throws<FormatException>(() => EtcdctlOutput.MemberId(line));
        Assert.Contains(line, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Removal_is_recognised_with_padding_and_only_for_that_member()
    {
        const string stdout = "Member  e9e05c52164694d removed from cluster cdf818194e3a8c32\n";
        Assert.True(EtcdctlOutput.SaysRemoved(stdout, "e9e05c52164694d"));
        Assert.False(EtcdctlOutput.SaysRemoved(stdout, "9e05c52164694d"));
        Assert.False(EtcdctlOutput.SaysRemoved("Member  e9e05c52164694d added to cluster cdf818194e3a8c32\n", "e9e05c52164694d"));
    }
}
