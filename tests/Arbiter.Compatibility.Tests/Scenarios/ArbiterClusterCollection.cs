using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// One 3-process cluster shared by every <c>…OnArbiterCluster</c> class: a cluster per class would start
/// 18 processes on a 2-core machine. Tests of a collection run one at a time and isolate by key prefix.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ArbiterClusterCollection : ICollectionFixture<ArbiterClusterFixture>
{
    public const string Name = "arbiter-cluster";
}
