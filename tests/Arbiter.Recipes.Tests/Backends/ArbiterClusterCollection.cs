namespace Arbiter.Recipes.Tests.Backends;

/// <summary>
/// One 3-process cluster shared by the contract and process suites: two clusters would run six
/// processes on a 2-core machine. Tests of a collection run one at a time and isolate by key prefix.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ArbiterClusterCollection : ICollectionFixture<ArbiterClusterBackend>
{
    public const string Name = "arbiter-cluster";
}
