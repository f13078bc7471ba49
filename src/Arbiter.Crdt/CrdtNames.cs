using System.Globalization;
using Arbiter.Protocol.Crdt;

namespace Arbiter.Crdt;

/// <summary>User-facing names of types and operations, as the proto spells them.</summary>
internal static class CrdtNames
{
    public static bool IsKnown(CrdtType type) => type is >= CrdtType.GCounter and <= CrdtType.Flag;

    public static string Of(CrdtType type) => type switch
    {
        CrdtType.GCounter => "G_COUNTER",
        CrdtType.PnCounter => "PN_COUNTER",
        CrdtType.OrSet => "OR_SET",
        CrdtType.LwwRegister => "LWW_REGISTER",
        CrdtType.MvRegister => "MV_REGISTER",
        CrdtType.OrMap => "OR_MAP",
        CrdtType.Flag => "FLAG",
        CrdtType.Unspecified => "CRDT_TYPE_UNSPECIFIED",
        _ => "type " + ((int)type).ToString(CultureInfo.InvariantCulture),
    };

    public static string Of(CrdtOperation.OpOneofCase operation) => operation switch
    {
        CrdtOperation.OpOneofCase.CounterAdd => "counter_add",
        CrdtOperation.OpOneofCase.SetAdd => "set_add",
        CrdtOperation.OpOneofCase.SetRemove => "set_remove",
        CrdtOperation.OpOneofCase.RegisterAssign => "register_assign",
        CrdtOperation.OpOneofCase.FlagAssign => "flag_assign",
        CrdtOperation.OpOneofCase.MapUpdate => "map_update",
        CrdtOperation.OpOneofCase.MapRemove => "map_remove",
        _ => "an empty operation",
    };
}
