using System.Runtime.CompilerServices;
using Arbiter.Client;

namespace Arbiter.Recipes;

/// <summary>One registered instance of a service (or one group member).</summary>
/// <param name="Id">Instance id, unique within the service.</param>
/// <param name="Address">Where to reach it (or any member metadata).</param>
public sealed record ServiceInstance(string Id, string Address);

/// <summary>
/// Service discovery: instances register <c>prefix/&lt;service&gt;/&lt;id&gt;</c> = address under a
/// session lease, so a crashed instance disappears after its TTL. Also serves as group membership.
/// </summary>
public sealed class ServiceRegistry
{
    private readonly ArbiterClient _client;

    /// <summary>A registry under <paramref name="prefix"/> (default <c>services</c>).</summary>
    public ServiceRegistry(ArbiterClient client, string prefix = "services")
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        Prefix = prefix;
    }

    /// <summary>The key prefix.</summary>
    public string Prefix { get; }

    /// <summary>Registers an instance until the returned handle is disposed or its session is lost.</summary>
    public async Task<ServiceRegistration> RegisterAsync(string service, string id, string address, TimeSpan? ttl = null, CancellationToken cancellationToken = default)
    {
        var session = await _client.CreateSessionAsync(ttl, cancellationToken).ConfigureAwait(false);
        try
        {
            var key = ServicePrefix(service) + id;
            await _client.PutAsync(key, address, session.LeaseId, cancellationToken).ConfigureAwait(false);
            return new ServiceRegistration(session, key, new ServiceInstance(id, address));
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The instances registered now, by id.</summary>
    public async Task<IReadOnlyList<ServiceInstance>> ResolveAsync(string service, CancellationToken cancellationToken = default) =>
        ToInstances(service, await _client.GetPrefixAsync(ServicePrefix(service), cancellationToken).ConfigureAwait(false));

    /// <summary>The instance set now, then after every change.</summary>
    public async IAsyncEnumerable<IReadOnlyList<ServiceInstance>> WatchAsync(string service, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var kvs in _client.WatchPrefixSnapshotsAsync(ServicePrefix(service), cancellationToken).ConfigureAwait(false))
        {
            yield return ToInstances(service, kvs);
        }
    }

    private string ServicePrefix(string service)
    {
        ArgumentException.ThrowIfNullOrEmpty(service);
        return Prefix + "/" + service + "/";
    }

    private IReadOnlyList<ServiceInstance> ToInstances(string service, IReadOnlyList<Protocol.Mvcc.KeyValue> kvs)
    {
        var prefix = ServicePrefix(service);
        return [.. kvs.Select(kv => new ServiceInstance(kv.Key.ToStringUtf8()[prefix.Length..], kv.Value.ToStringUtf8()))];
    }
}

/// <summary>A live registration; disposing deregisters (revokes its lease).</summary>
public sealed class ServiceRegistration : IAsyncDisposable
{
    private readonly Session _session;

    internal ServiceRegistration(Session session, string key, ServiceInstance instance)
    {
        _session = session;
        Key = key;
        Instance = instance;
    }

    /// <summary>The registration key.</summary>
    public string Key { get; }

    /// <summary>What was registered.</summary>
    public ServiceInstance Instance { get; }

    /// <summary>Fires when the registration's lease is lost (the instance has vanished from the registry).</summary>
    public CancellationToken LostToken => _session.LostToken;

    /// <summary>Deregisters.</summary>
    public ValueTask DisposeAsync() => _session.DisposeAsync();
}

/// <summary>How <see cref="ServicePicker"/> chooses.</summary>
public enum PickStrategy
{
    /// <summary>Uniformly at random.</summary>
    Random,

    /// <summary>Each instance in turn (by id order).</summary>
    RoundRobin,
}

/// <summary>Picks one instance of a service per call, from a fresh resolve.</summary>
public sealed class ServicePicker
{
    private readonly ServiceRegistry _registry;
    private readonly string _service;
    private readonly PickStrategy _strategy;
    private readonly Random _random;
    private long _next;

    /// <summary>A picker for <paramref name="service"/>; <paramref name="random"/> may be seeded for tests.</summary>
    public ServicePicker(ServiceRegistry registry, string service, PickStrategy strategy, Random? random = null)
    {
        _registry = registry ?? throw new ArgumentNullException(nameof(registry));
        _service = service;
        _strategy = strategy;
        _random = random ?? Random.Shared;
    }

    /// <summary>One instance, or null when none is registered.</summary>
    public async Task<ServiceInstance?> PickAsync(CancellationToken cancellationToken = default)
    {
        var instances = await _registry.ResolveAsync(_service, cancellationToken).ConfigureAwait(false);
        if (instances.Count == 0)
        {
            return null;
        }

        var index = _strategy == PickStrategy.Random
            ? _random.Next(instances.Count)
            : (int)((Interlocked.Increment(ref _next) - 1) % instances.Count);
        return instances[index];
    }
}

/// <summary>Group membership: members join under a lease and leave on dispose or crash (a registry of one "service").</summary>
public sealed class GroupMembership
{
    private readonly ServiceRegistry _registry;

    /// <summary>The group <paramref name="group"/> (keys <c>groups/&lt;group&gt;/&lt;member&gt;</c>).</summary>
    public GroupMembership(ArbiterClient client, string group)
    {
        ArgumentException.ThrowIfNullOrEmpty(group);
        _registry = new ServiceRegistry(client, "groups");
        Group = group;
    }

    /// <summary>The group name.</summary>
    public string Group { get; }

    /// <summary>Joins with <paramref name="memberId"/> and optional metadata.</summary>
    public Task<ServiceRegistration> JoinAsync(string memberId, string metadata = "", TimeSpan? ttl = null, CancellationToken cancellationToken = default) =>
        _registry.RegisterAsync(Group, memberId, metadata, ttl, cancellationToken);

    /// <summary>The members now.</summary>
    public Task<IReadOnlyList<ServiceInstance>> GetMembersAsync(CancellationToken cancellationToken = default) =>
        _registry.ResolveAsync(Group, cancellationToken);

    /// <summary>The member set now, then after every change.</summary>
    public IAsyncEnumerable<IReadOnlyList<ServiceInstance>> WatchAsync(CancellationToken cancellationToken = default) =>
        _registry.WatchAsync(Group, cancellationToken);
}
