namespace Arbiter.Packaging.Tests;

/// <summary>
/// The client package carries no engine: Arbiter.Client depends on Arbiter.Protocol, which depends on
/// gRPC and protobuf only; nothing in its closure is the node, storage, core, CRDT engine or DotNext.
/// Read from the restore graph (the same graph `dotnet pack` writes into the .nuspec; the packed
/// .nuspec itself is checked by <see cref="LocalFeedInstallTests"/>).
/// </summary>
public sealed class ClientDependencyTests(ITestOutputHelper output)
{
    /// <summary>What gRPC and protobuf are: the only packages the protocol package may name.</summary>
    public static readonly IReadOnlySet<string> GrpcAndProtobuf = new HashSet<string>(StringComparer.Ordinal)
    {
        "Google.Protobuf", "Google.Api.CommonProtos", "Grpc.Net.Client", "Grpc.Core.Api", "Grpc.Net.Common",
    };

    /// <summary>The engine and what only the engine needs.</summary>
    public static bool IsEngine(string library) =>
        library is "Arbiter.Node" or "Arbiter.Storage" or "Arbiter.Core" or "Arbiter.Crdt" or "Arbiter.Server" or "Arbiter.Embedded"
        || library.StartsWith("DotNext", StringComparison.Ordinal);

    [Fact]
    public void The_client_references_only_the_protocol()
    {
        var client = PackageGraph.Read("Arbiter.Client", RepositoryLayout.AssetsFile("Arbiter.Client"));
        Assert.Equal(["Arbiter.Protocol"], client.Direct);
    }

    [Fact]
    public void The_protocol_references_only_grpc_and_protobuf()
    {
        var protocol = PackageGraph.Read("Arbiter.Protocol", RepositoryLayout.AssetsFile("Arbiter.Protocol"));
        var beyond = protocol.Direct.Where(d => !GrpcAndProtobuf.Contains(d)).ToList();
        Assert.True(beyond.Count == 0, $"Arbiter.Protocol references {string.Join(", ", beyond)} beyond gRPC and protobuf");
    }

    [Fact]
    public void Everything_the_client_pulls_in_comes_from_grpc_or_protobuf()
    {
        var client = PackageGraph.Read("Arbiter.Client", RepositoryLayout.AssetsFile("Arbiter.Client"));
        output.WriteLine($"Arbiter.Client's closure ({client.Closure.Count}): {string.Join(", ", client.Closure.Keys)}");
        var engine = client.Closure.Keys.Where(IsEngine).ToList();
        Assert.True(engine.Count == 0, $"Arbiter.Client pulls in the engine: {string.Join(", ", engine)}");

        // Anything else must be needed by gRPC or protobuf themselves (logging abstractions for Grpc.Net.Client…).
        var brought = client.ReachableFrom(GrpcAndProtobuf.Where(client.Closure.ContainsKey), _ => false);
        var unexplained = client.Closure.Keys.Where(l => l != "Arbiter.Protocol" && !brought.Contains(l)).ToList();
        Assert.True(unexplained.Count == 0, $"Arbiter.Client depends on {string.Join(", ", unexplained)}, which gRPC and protobuf do not need");
    }

    [Theory]
    [InlineData("Arbiter.Recipes")]
    [InlineData("Arbiter.Hosting")]
    public void The_sdk_above_the_client_carries_no_engine_either(string project)
    {
        var graph = PackageGraph.Read(project, RepositoryLayout.AssetsFile(project));
        var engine = graph.Closure.Keys.Where(IsEngine).ToList();
        Assert.True(engine.Count == 0, $"{project} pulls in the engine: {string.Join(", ", engine)}");
    }

    [Fact]
    public void Embedded_mode_is_where_the_client_meets_the_node()
    {
        var embedded = PackageGraph.Read("Arbiter.Embedded", RepositoryLayout.AssetsFile("Arbiter.Embedded"));
        Assert.Equal(["Arbiter.Client", "Arbiter.Node"], embedded.Direct.Order(StringComparer.Ordinal));
    }
}
