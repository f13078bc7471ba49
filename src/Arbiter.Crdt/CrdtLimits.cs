namespace Arbiter.Crdt;

/// <summary>
/// The named limits of the CRDT layer, enforced by <see cref="CrdtMutator"/> with a
/// <see cref="CrdtException"/> that names the limit. Joins never refuse: states that grew past a
/// limit by merging concurrent updates are still merged (see docs/crdt.md).
/// </summary>
public sealed record CrdtLimits
{
    /// <summary>The defaults below.</summary>
    public static CrdtLimits Default { get; } = new();

    /// <summary>Largest set element or map field, in bytes (default 4 KiB).</summary>
    public int ElementSizeBytesMax { get; init; } = 4 * 1024;

    /// <summary>Largest value assigned to an LWW or MV register, in bytes (default 64 KiB).</summary>
    public int RegisterValueSizeBytesMax { get; init; } = 64 * 1024;

    /// <summary>Most elements one set add or remove, or fields one map remove, may name (default 1,000).</summary>
    public int ElementsPerOperationMax { get; init; } = 1_000;

    /// <summary>Most elements a set may hold after an add (default 10,000).</summary>
    public int ElementsPerSetMax { get; init; } = 10_000;

    /// <summary>Most siblings an MV register may hold after a write (default 100, Riak's <c>object.siblings.maximum</c>).</summary>
    public int SiblingsPerRegisterMax { get; init; } = 100;

    /// <summary>Most fields (field and type pairs) a map may hold after an update (default 1,000).</summary>
    public int FieldsPerMapMax { get; init; } = 1_000;

    /// <summary>Most maps one operation may pass through, the key's own map included (default 4).</summary>
    public int NestingDepthMax { get; init; } = 4;

    /// <summary>Largest MV-register context a write may carry, in bytes (default 64 KiB).</summary>
    public int MvContextSizeBytesMax { get; init; } = 64 * 1024;

    /// <summary>Largest encoded state of one key after an update, in bytes (default 1 MiB).</summary>
    public int StateSizeBytesMax { get; init; } = 1024 * 1024;
}
