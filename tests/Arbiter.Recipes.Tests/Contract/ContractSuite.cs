using Arbiter.Client;
using Arbiter.Recipes.Tests.Backends;

namespace Arbiter.Recipes.Tests.Contract;

/// <summary>
/// The one contract suite: the typed client and every recipe, run unchanged against each backend
/// (embedded node, Arbiter server process, 3-node Arbiter cluster through a follower, real etcd). Partial classes split it by recipe.
/// </summary>
public abstract partial class ContractSuite : IAsyncLifetime
{
    private readonly List<ArbiterClient> _clients = [];

    protected ContractSuite(IBackend backend, ITestOutputHelper output)
    {
        Backend = backend;
        Output = output;
        Prefix = $"c-{Guid.NewGuid().ToString("N")[..8]}/";
    }

    protected IBackend Backend { get; }

    protected ITestOutputHelper Output { get; }

    /// <summary>Every key of a test lives under this prefix, so tests share one server.</summary>
    protected string Prefix { get; }

    /// <summary>A client closed at the end of the test.</summary>
    protected ArbiterClient NewClient()
    {
        var client = Backend.NewClient();
        lock (_clients)
        {
            _clients.Add(client);
        }

        return client;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }
    }

    /// <summary>Keys under <paramref name="prefix"/> now.</summary>
    protected async Task<int> CountKeysAsync(string prefix) => (await NewClient().GetPrefixAsync(prefix)).Count;
}

public sealed class EmbeddedContractTests(EmbeddedBackend backend, ITestOutputHelper output) : ContractSuite(backend, output), IClassFixture<EmbeddedBackend>;

public sealed class ArbiterServerContractTests(ArbiterServerBackend backend, ITestOutputHelper output) : ContractSuite(backend, output), IClassFixture<ArbiterServerBackend>;

[Collection(ArbiterClusterCollection.Name)]
public sealed class ArbiterClusterContractTests(ArbiterClusterBackend backend, ITestOutputHelper output) : ContractSuite(backend, output);

public sealed class EtcdContractTests(EtcdBackend backend, ITestOutputHelper output) : ContractSuite(backend, output), IClassFixture<EtcdBackend>;
