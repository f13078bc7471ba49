namespace Arbiter.Crdt.Tests;

/// <summary>The semilattice laws, for any join function (the real one, or a planted broken one).</summary>
internal static class Laws
{
    public static CrdtState Join(CrdtState x, CrdtState y) => x.Join(y);

    public static void Hold(Func<CrdtState, CrdtState, CrdtState> join, CrdtState x, CrdtState y, CrdtState z)
    {
        Assert.True(join(x, y).Equals(join(y, x)), $"join is not commutative:\n x = {x}\n y = {y}\n x⊔y = {join(x, y)}\n y⊔x = {join(y, x)}");
        Assert.True(join(join(x, y), z).Equals(join(x, join(y, z))), $"join is not associative:\n x = {x}\n y = {y}\n z = {z}");
        Assert.True(join(x, x).Equals(x), $"join is not idempotent: x = {x}, x⊔x = {join(x, x)}");
        Assert.True(join(x, join(x, y)).Equals(join(x, y)), $"join is not an upper bound: x = {x}, y = {y}");
    }
}
