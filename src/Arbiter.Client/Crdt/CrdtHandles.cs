using Arbiter.Protocol.Crdt;
using Google.Protobuf;

namespace Arbiter.Client.Crdt;

/// <summary>A typed handle on one CRDT key: the client it calls through and the key.</summary>
public abstract class CrdtHandle
{
    private protected CrdtHandle(CrdtClient client, string key)
    {
        Client = client;
        Key = key;
    }

    /// <summary>The key.</summary>
    public string Key { get; }

    private protected CrdtClient Client { get; }
}

/// <summary>A counter key (PN-Counter or G-Counter). Concurrent increments on any members all count.</summary>
public sealed class CrdtCounter : CrdtHandle
{
    private readonly CrdtType _type;

    internal CrdtCounter(CrdtClient client, string key, CrdtType type)
        : base(client, key) => _type = type;

    /// <summary>Adds <paramref name="delta"/> (negative only on a PN-Counter) and returns the value on the member after it.</summary>
    public async Task<long> AddAsync(long delta, CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var response = await Client.UpdateAsync(Key, _type, new CrdtOperation { CounterAdd = new CounterAdd { Delta = delta } }, options, cancellationToken).ConfigureAwait(false);
        return response.Value.Counter;
    }

    /// <summary>Adds one.</summary>
    public Task<long> IncrementAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) => AddAsync(1, options, cancellationToken);

    /// <summary>Subtracts one (PN-Counter only).</summary>
    public Task<long> DecrementAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) => AddAsync(-1, options, cancellationToken);

    /// <summary>The merged value (0 if the key does not exist).</summary>
    public async Task<long> GetAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        (await Client.GetAsync(Key, options, cancellationToken).ConfigureAwait(false)).Counter;
}

/// <summary>An add-wins set key (OR-Set): an add concurrent with a remove of the same element wins.</summary>
public sealed class CrdtSet : CrdtHandle
{
    internal CrdtSet(CrdtClient client, string key)
        : base(client, key)
    {
    }

    /// <summary>Adds elements (UTF-8 strings).</summary>
    public Task AddAsync(params string[] elements) => AddAsync(elements.Select(CrdtClient.Bytes), null, default);

    /// <summary>Adds elements.</summary>
    public async Task AddAsync(IEnumerable<ByteString> elements, CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var add = new SetAdd();
        add.Elements.AddRange(elements);
        await Client.UpdateAsync(Key, CrdtType.OrSet, new CrdtOperation { SetAdd = add }, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes elements (UTF-8 strings) as this member has observed them.</summary>
    public Task RemoveAsync(params string[] elements) => RemoveAsync(elements.Select(CrdtClient.Bytes), null, default);

    /// <summary>Removes elements as this member has observed them.</summary>
    public async Task RemoveAsync(IEnumerable<ByteString> elements, CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var remove = new SetRemove();
        remove.Elements.AddRange(elements);
        await Client.UpdateAsync(Key, CrdtType.OrSet, new CrdtOperation { SetRemove = remove }, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The elements, sorted by bytes.</summary>
    public async Task<IReadOnlyList<ByteString>> GetAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        (await Client.GetAsync(Key, options, cancellationToken).ConfigureAwait(false)).Set?.Elements.ToList() ?? [];

    /// <summary>The elements as UTF-8 strings.</summary>
    public async Task<IReadOnlyList<string>> GetStringsAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        [.. (await GetAsync(options, cancellationToken).ConfigureAwait(false)).Select(CrdtClient.Text)];
}

/// <summary>
/// A last-writer-wins register stamped with a hybrid logical clock: a write made after reading
/// (through the same <see cref="CrdtClient"/>) wins over what was read; of two truly concurrent
/// writes one is lost (use <see cref="CrdtMvRegister"/> to keep both).
/// </summary>
public sealed class CrdtLwwRegister : CrdtHandle
{
    internal CrdtLwwRegister(CrdtClient client, string key)
        : base(client, key)
    {
    }

    /// <summary>Assigns a UTF-8 string.</summary>
    public Task SetAsync(string value, CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        SetAsync(CrdtClient.Bytes(value), options, cancellationToken);

    /// <summary>Assigns a value.</summary>
    public async Task SetAsync(ByteString value, CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        await Client.UpdateAsync(Key, CrdtType.LwwRegister, new CrdtOperation { RegisterAssign = new RegisterAssign { Value = value } }, options, cancellationToken).ConfigureAwait(false);

    /// <summary>The current value, or null if never assigned.</summary>
    public async Task<ByteString?> GetAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        (await Client.GetAsync(Key, options, cancellationToken).ConfigureAwait(false)).Lww is { Assigned: true } lww ? lww.Value : null;

    /// <summary>The current value as a UTF-8 string, or null if never assigned.</summary>
    public async Task<string?> GetStringAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetAsync(options, cancellationToken).ConfigureAwait(false) is { } value ? CrdtClient.Text(value) : null;
}

/// <summary>What a multi-value register read returns: its siblings and the context to resolve them with.</summary>
/// <param name="Siblings">Concurrent values, sorted by bytes; more than one means writes to resolve.</param>
/// <param name="Context">Pass to <see cref="CrdtMvRegister.SetAsync(ByteString, ByteString, CrdtCallOptions?, CancellationToken)"/> to replace exactly these siblings.</param>
public sealed record CrdtSiblings(IReadOnlyList<ByteString> Siblings, ByteString Context);

/// <summary>A multi-value register: concurrent writes are kept as siblings until a write that saw them replaces them.</summary>
public sealed class CrdtMvRegister : CrdtHandle
{
    internal CrdtMvRegister(CrdtClient client, string key)
        : base(client, key)
    {
    }

    /// <summary>The siblings and their context.</summary>
    public async Task<CrdtSiblings> GetAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var value = await Client.GetAsync(Key, options, cancellationToken).ConfigureAwait(false);
        return value.Mv is { } mv ? new CrdtSiblings([.. mv.Siblings], mv.Context) : new CrdtSiblings([], ByteString.Empty);
    }

    /// <summary>
    /// Writes <paramref name="value"/>, replacing the siblings <paramref name="context"/> (from a
    /// read) covers; an empty context is a blind write kept beside every current sibling.
    /// </summary>
    public async Task<CrdtSiblings> SetAsync(ByteString value, ByteString context, CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var response = await Client.UpdateAsync(Key, CrdtType.MvRegister, new CrdtOperation { RegisterAssign = new RegisterAssign { Value = value, Context = context } }, options, cancellationToken).ConfigureAwait(false);
        var mv = response.Value.Mv;
        return new CrdtSiblings([.. mv.Siblings], mv.Context);
    }
}

/// <summary>An enable-wins flag.</summary>
public sealed class CrdtFlag : CrdtHandle
{
    internal CrdtFlag(CrdtClient client, string key)
        : base(client, key)
    {
    }

    /// <summary>Enables (or, with false, disables) the flag; an enable concurrent with a disable wins.</summary>
    public async Task SetAsync(bool enabled, CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        await Client.UpdateAsync(Key, CrdtType.Flag, new CrdtOperation { FlagAssign = new FlagAssign { Enabled = enabled } }, options, cancellationToken).ConfigureAwait(false);

    /// <summary>Whether the flag is enabled (false if the key does not exist).</summary>
    public async Task<bool> GetAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        (await Client.GetAsync(Key, options, cancellationToken).ConfigureAwait(false)).Flag;
}

/// <summary>An observed-remove map from fields to nested CRDTs (each field keeps one type).</summary>
public sealed class CrdtMap : CrdtHandle
{
    internal CrdtMap(CrdtClient client, string key)
        : base(client, key)
    {
    }

    /// <summary>Applies <paramref name="operation"/> to the nested CRDT of <paramref name="type"/> under <paramref name="field"/>.</summary>
    public async Task UpdateAsync(string field, CrdtType type, CrdtOperation operation, CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        await Client.UpdateAsync(Key, CrdtType.OrMap, new CrdtOperation { MapUpdate = new MapUpdate { Field = CrdtClient.Bytes(field), Type = type, Operation = operation } }, options, cancellationToken).ConfigureAwait(false);

    /// <summary>Adds <paramref name="delta"/> to the PN-Counter under <paramref name="field"/>.</summary>
    public Task AddAsync(string field, long delta, CrdtCallOptions? options = null, CancellationToken cancellationToken = default) =>
        UpdateAsync(field, CrdtType.PnCounter, new CrdtOperation { CounterAdd = new CounterAdd { Delta = delta } }, options, cancellationToken);

    /// <summary>Removes fields as this member has observed them; a concurrent update elsewhere keeps a field.</summary>
    public async Task RemoveAsync(IEnumerable<string> fields, CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var remove = new MapRemove();
        remove.Fields.AddRange(fields.Select(CrdtClient.Bytes));
        await Client.UpdateAsync(Key, CrdtType.OrMap, new CrdtOperation { MapRemove = remove }, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The fields (UTF-8) and their values, sorted by field.</summary>
    public async Task<IReadOnlyDictionary<string, CrdtValue>> GetAsync(CrdtCallOptions? options = null, CancellationToken cancellationToken = default)
    {
        var value = await Client.GetAsync(Key, options, cancellationToken).ConfigureAwait(false);
        return value.Map?.Entries.ToDictionary(e => CrdtClient.Text(e.Field), e => e.Value, StringComparer.Ordinal) ?? [];
    }
}
