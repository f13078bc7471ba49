using System.Text;
using Arbiter.Protocol.Crdt;
using Google.Protobuf;

namespace Arbiter.Crdt.Tests;

/// <summary>Operation builders.</summary>
internal static class Ops
{
    public static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    public static string S(ByteString bytes) => bytes.ToStringUtf8();

    public static CrdtOperation Add(long delta) => new() { CounterAdd = new CounterAdd { Delta = delta } };

    public static CrdtOperation SetAdd(params string[] elements)
    {
        var add = new SetAdd();
        add.Elements.AddRange(elements.Select(B));
        return new CrdtOperation { SetAdd = add };
    }

    public static CrdtOperation SetRemove(params string[] elements)
    {
        var remove = new SetRemove();
        remove.Elements.AddRange(elements.Select(B));
        return new CrdtOperation { SetRemove = remove };
    }

    public static CrdtOperation Assign(string value, ByteString? context = null) =>
        new() { RegisterAssign = new RegisterAssign { Value = B(value), Context = context ?? ByteString.Empty } };

    public static CrdtOperation Flag(bool enabled) => new() { FlagAssign = new FlagAssign { Enabled = enabled } };

    public static CrdtOperation Update(string field, CrdtType type, CrdtOperation operation) =>
        new() { MapUpdate = new MapUpdate { Field = B(field), Type = type, Operation = operation } };

    public static CrdtOperation Remove(params string[] fields)
    {
        var remove = new MapRemove();
        remove.Fields.AddRange(fields.Select(B));
        return new CrdtOperation { MapRemove = remove };
    }

    public static string[] Elements(CrdtState state) => [.. state.ToValue().Set.Elements.Select(S)];

    public static string[] Siblings(CrdtState state) => [.. state.ToValue().Mv.Siblings.Select(S)];

    public static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
