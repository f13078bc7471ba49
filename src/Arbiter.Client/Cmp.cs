using Arbiter.Protocol.Etcd;
using Google.Protobuf;

namespace Arbiter.Client;

/// <summary>
/// Builds transaction guards readably: <c>Cmp.Version("k") == 0</c>, <c>Cmp.Value("k") == "v"</c>,
/// <c>Cmp.CreateRevision(lockKey) == token</c>. (Named Cmp so it does not clash with the protocol's Compare message.)
/// </summary>
public static class Cmp
{
    /// <summary>The key's version (0 when absent).</summary>
    public static CmpTarget Version(string key) => new(Keys.From(key), Compare.Types.CompareTarget.Version);

    /// <summary>The key's version (0 when absent).</summary>
    public static CmpTarget Version(ByteString key) => new(key, Compare.Types.CompareTarget.Version);

    /// <summary>The key's create revision (0 when absent): the fencing token of a lock key.</summary>
    public static CmpTarget CreateRevision(string key) => new(Keys.From(key), Compare.Types.CompareTarget.Create);

    /// <summary>The key's create revision (0 when absent).</summary>
    public static CmpTarget CreateRevision(ByteString key) => new(key, Compare.Types.CompareTarget.Create);

    /// <summary>The key's last modification revision (0 when absent).</summary>
    public static CmpTarget ModRevision(string key) => new(Keys.From(key), Compare.Types.CompareTarget.Mod);

    /// <summary>The key's last modification revision (0 when absent).</summary>
    public static CmpTarget ModRevision(ByteString key) => new(key, Compare.Types.CompareTarget.Mod);

    /// <summary>The key's value (a compare on an absent key fails).</summary>
    public static CmpTarget Value(string key) => new(Keys.From(key), Compare.Types.CompareTarget.Value);

    /// <summary>The key's value (a compare on an absent key fails).</summary>
    public static CmpTarget Value(ByteString key) => new(key, Compare.Types.CompareTarget.Value);

    /// <summary>The key's lease id (0 when none).</summary>
    public static CmpTarget Lease(string key) => new(Keys.From(key), Compare.Types.CompareTarget.Lease);
}

/// <summary>One side of a compare; combine with an operator and a number or value to get a <see cref="Compare"/>.</summary>
public readonly struct CmpTarget : IEquatable<CmpTarget>
{
    internal CmpTarget(ByteString key, Compare.Types.CompareTarget target)
    {
        Key = key ?? throw new ArgumentNullException(nameof(key));
        Target = target;
    }

    /// <summary>The key compared.</summary>
    public ByteString Key { get; }

    /// <summary>What of the key is compared.</summary>
    public Compare.Types.CompareTarget Target { get; }

    /// <summary>Equal.</summary>
    public static Compare operator ==(CmpTarget left, long right) => left.Make(Compare.Types.CompareResult.Equal, right);

    /// <summary>Not equal.</summary>
    public static Compare operator !=(CmpTarget left, long right) => left.Make(Compare.Types.CompareResult.NotEqual, right);

    /// <summary>Greater.</summary>
    public static Compare operator >(CmpTarget left, long right) => left.Make(Compare.Types.CompareResult.Greater, right);

    /// <summary>Less.</summary>
    public static Compare operator <(CmpTarget left, long right) => left.Make(Compare.Types.CompareResult.Less, right);

    /// <summary>Value equal (UTF-8).</summary>
    public static Compare operator ==(CmpTarget left, string right) => left.MakeValue(Compare.Types.CompareResult.Equal, Keys.From(right));

    /// <summary>Value not equal (UTF-8).</summary>
    public static Compare operator !=(CmpTarget left, string right) => left.MakeValue(Compare.Types.CompareResult.NotEqual, Keys.From(right));

    /// <summary>Value greater (UTF-8, bytewise).</summary>
    public static Compare operator >(CmpTarget left, string right) => left.MakeValue(Compare.Types.CompareResult.Greater, Keys.From(right));

    /// <summary>Value less (UTF-8, bytewise).</summary>
    public static Compare operator <(CmpTarget left, string right) => left.MakeValue(Compare.Types.CompareResult.Less, Keys.From(right));

    /// <summary>Not a comparison: compares two targets for identity.</summary>
    public static bool operator ==(CmpTarget left, CmpTarget right) => left.Equals(right);

    /// <summary>Not a comparison: compares two targets for identity.</summary>
    public static bool operator !=(CmpTarget left, CmpTarget right) => !left.Equals(right);

    /// <summary>Identity.</summary>
    public bool Equals(CmpTarget other) => Target == other.Target && Equals(Key, other.Key);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is CmpTarget other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Key, Target);

    /// <summary>A value compare against raw bytes.</summary>
    public Compare ValueIs(Compare.Types.CompareResult result, ByteString value) => MakeValue(result, value);

    private Compare Make(Compare.Types.CompareResult result, long number)
    {
        var compare = new Compare { Key = Key, Target = Target, Result = result };
        switch (Target)
        {
            case Compare.Types.CompareTarget.Version:
                compare.Version = number;
                break;
            case Compare.Types.CompareTarget.Create:
                compare.CreateRevision = number;
                break;
            case Compare.Types.CompareTarget.Mod:
                compare.ModRevision = number;
                break;
            case Compare.Types.CompareTarget.Lease:
                compare.Lease = number;
                break;
            default:
                throw new InvalidOperationException("a value compare needs a string or bytes, not a number");
        }

        return compare;
    }

    private Compare MakeValue(Compare.Types.CompareResult result, ByteString value)
    {
        if (Target != Compare.Types.CompareTarget.Value)
        {
            throw new InvalidOperationException("only Cmp.Value compares against a string");
        }

        return new Compare { Key = Key, Target = Target, Result = result, Value = value };
    }
}
