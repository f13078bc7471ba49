namespace Arbiter.Compatibility.Tests.Gateway;

/// <summary>
/// The differential gateway tests compare normalized bodies: this shows the normalization masks only
/// what it should, so that a planted difference in shape (field names, number encoding, a missing or
/// extra field, a value) still fails the comparison.
/// </summary>
public sealed class GatewayNormalizerTests
{
    private const string Etcd = """{"header":{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"10","mod_revision":"12","version":"2","value":"eA=="}],"count":"1"}""";

    [Fact]
    public void MasksIdsAndTermsAndCountsRevisionsFromTheBase()
    {
        var other = """{"header":{"cluster_id":"77","member_id":"88","revision":"5","raft_term":"1"},"kvs":[{"key":"YQ==","create_revision":"3","mod_revision":"5","version":"2","value":"eA=="}],"count":"1"}""";
        Assert.Equal(new GatewayNormalizer(10).Normalize(Etcd), new GatewayNormalizer(3).Normalize(other));
    }

    [Theory]
    [InlineData("camelCase names", """{"header":{"clusterId":"1","memberId":"2","revision":"12","raftTerm":"2"},"kvs":[{"key":"YQ==","createRevision":"10","modRevision":"12","version":"2","value":"eA=="}],"count":"1"}""")]
    [InlineData("int64 as a number", """{"header":{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"10","mod_revision":"12","version":2,"value":"eA=="}],"count":"1"}""")]
    [InlineData("a default value written", """{"header":{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"10","mod_revision":"12","version":"2","value":"eA==","lease":"0"}],"count":"1"}""")]
    [InlineData("a field missing", """{"header":{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"10","mod_revision":"12","version":"2","value":"eA=="}]}""")]
    [InlineData("another value", """{"header":{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"10","mod_revision":"12","version":"2","value":"eQ=="}],"count":"1"}""")]
    [InlineData("another revision", """{"header":{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"11","mod_revision":"12","version":"2","value":"eA=="}],"count":"1"}""")]
    [InlineData("a result wrapper", """{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"12","raft_term":"2"},"kvs":[{"key":"YQ==","create_revision":"10","mod_revision":"12","version":"2","value":"eA=="}],"count":"1"}}""")]
    public void PlantedDifferencesAreCaught(string what, string planted)
    {
        var normalizer = new GatewayNormalizer(10);
        Assert.True(normalizer.Normalize(Etcd) != normalizer.Normalize(planted), $"{what}: the normalizer hid the difference");
    }
}
