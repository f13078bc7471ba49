using Arbiter.Protocol.Crdt;
using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Crdt.Tests;

/// <summary>Bad input is refused with a CrdtException that says what is wrong, and nothing changes.</summary>
public sealed class BadInputTests(ITestOutputHelper output)
{
    private static readonly ReplicaId Me = new(9);

    private static readonly CrdtLimits Small = new()
    {
        ElementSizeBytesMax = 8,
        RegisterValueSizeBytesMax = 16,
        ElementsPerOperationMax = 3,
        ElementsPerSetMax = 4,
        SiblingsPerRegisterMax = 2,
        FieldsPerMapMax = 2,
        NestingDepthMax = 2,
        MvContextSizeBytesMax = 64,
        StateSizeBytesMax = 400,
    };

    /// <summary>A state with some history, so "unchanged" means something.</summary>
    private static CrdtState Seeded(CrdtType type)
    {
        var state = CrdtState.Empty(type);
        var operation = Simulation.OperationFor(type, 3, 1, null, 0);
        return state.Join(CrdtMutator.Apply(state, operation, new ReplicaId(1), new Hlc(5, 0), CrdtLimits.Default));
    }

    private CrdtException Refused(CrdtState state, CrdtOperation operation, string expected, CrdtLimits? limits = null)
    {
        byte[] before = state.ToBytes();
        var refused = Assert.ThrowsAny<CrdtException>(() => CrdtMutator.Apply(state, operation, Me, new Hlc(10, 0), limits ?? Small));
        output.WriteLine($"{state.Type}: {refused.Message}");
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, state.ToBytes());
        return refused;
    }

    public static TheoryData<CrdtType, CrdtOperation> WrongOperations => new()
    {
        { CrdtType.GCounter, Ops.SetAdd("x") },
        { CrdtType.PnCounter, Ops.Assign("x") },
        { CrdtType.OrSet, Ops.Add(1) },
        { CrdtType.LwwRegister, Ops.Flag(true) },
        { CrdtType.MvRegister, Ops.Remove("x") },
        { CrdtType.Flag, Ops.SetRemove("x") },
        { CrdtType.OrMap, Ops.Add(1) },
    };

    [Theory]
    [MemberData(nameof(WrongOperations))]
    public void AnOperationOfTheWrongTypeIsRefused(CrdtType type, CrdtOperation operation) =>
        Refused(Seeded(type), operation, "does not apply to a");

    [Fact]
    public void AnEmptyOperationIsRefused() =>
        Refused(Seeded(CrdtType.OrSet), new CrdtOperation(), "the operation is empty");

    [Fact]
    public void UnknownTypesAreRefused()
    {
        Assert.Contains("unknown CRDT type", Assert.Throws<CrdtException>(() => CrdtState.Empty(CrdtType.Unspecified)).Message, StringComparison.Ordinal);
        Assert.Throws<CrdtException>(() => CrdtState.Empty((CrdtType)99));
        Refused(Seeded(CrdtType.OrMap), Ops.Update("f", (CrdtType)99, Ops.Add(1)), "unknown type");
        Refused(Seeded(CrdtType.OrMap), Ops.Update("f", CrdtType.Unspecified, Ops.Add(1)), "names no type");
        Refused(Seeded(CrdtType.OrMap), new CrdtOperation { MapUpdate = new MapUpdate { Field = Ops.B("f"), Type = CrdtType.GCounter } }, "carries no operation");
    }

    [Fact]
    public void AJoinOfDifferentTypesIsRefused() =>
        Assert.Contains("cannot join", Assert.Throws<CrdtException>(() => Seeded(CrdtType.OrSet).Join(Seeded(CrdtType.Flag))).Message, StringComparison.Ordinal);

    [Fact]
    public void ANegativeGCounterDeltaIsRefused()
    {
        Refused(Seeded(CrdtType.GCounter), Ops.Add(-1), "only grows");
        Refused(Seeded(CrdtType.OrMap), Ops.Update("g", CrdtType.GCounter, Ops.Add(-1)), "only grows in field \"g\"");
    }

    [Fact]
    public void ACounterOverflowIsRefused()
    {
        var state = CrdtState.Empty(CrdtType.PnCounter);
        state = state.Join(CrdtMutator.Apply(state, Ops.Add(long.MaxValue), Me, Hlc.Zero, Small));
        Refused(state, Ops.Add(1), "overflow");
        state = state.Join(CrdtMutator.Apply(state, Ops.Add(long.MinValue), Me, Hlc.Zero, Small));
        Assert.Equal(-1, state.ToValue().Counter);
    }

    [Fact]
    public void OversizeElementsFieldsAndValuesAreRefused()
    {
        Refused(Seeded(CrdtType.OrSet), Ops.SetAdd("123456789"), "over the limit of 8 (ElementSizeBytesMax)");
        Refused(Seeded(CrdtType.OrSet), Ops.SetRemove("123456789"), "ElementSizeBytesMax");
        Refused(Seeded(CrdtType.OrMap), Ops.Update("123456789", CrdtType.Flag, Ops.Flag(true)), "ElementSizeBytesMax");
        Refused(Seeded(CrdtType.LwwRegister), Ops.Assign(new string('v', 17)), "RegisterValueSizeBytesMax");
        Refused(Seeded(CrdtType.MvRegister), Ops.Assign(new string('v', 17)), "RegisterValueSizeBytesMax");
    }

    [Fact]
    public void TooManyElementsSiblingsOrFieldsAreRefused()
    {
        Refused(Seeded(CrdtType.OrSet), Ops.SetAdd("a", "b", "c", "d"), "ElementsPerOperationMax");
        var set = CrdtState.Empty(CrdtType.OrSet);
        set = set.Join(CrdtMutator.Apply(set, Ops.SetAdd("a", "b", "c"), Me, Hlc.Zero, Small));
        set = set.Join(CrdtMutator.Apply(set, Ops.SetAdd("d"), Me, Hlc.Zero, Small));
        Refused(set, Ops.SetAdd("e"), "would hold 5 elements, over the limit of 4 (ElementsPerSetMax)");
        Assert.False(CrdtMutator.Apply(set, Ops.SetAdd("a"), Me, Hlc.Zero, Small).IsEmpty);

        var empty = CrdtState.Empty(CrdtType.MvRegister);
        var mv = empty.Join(CrdtMutator.Apply(empty, Ops.Assign("x"), new ReplicaId(1), Hlc.Zero, Small))
            .Join(CrdtMutator.Apply(empty, Ops.Assign("y"), new ReplicaId(2), Hlc.Zero, Small));
        Refused(mv, Ops.Assign("z"), "SiblingsPerRegisterMax");
        Assert.False(CrdtMutator.Apply(mv, Ops.Assign("z", mv.ToValue().Mv.Context), Me, Hlc.Zero, Small).IsEmpty);

        var map = CrdtState.Empty(CrdtType.OrMap);
        map = map.Join(CrdtMutator.Apply(map, Ops.Update("a", CrdtType.Flag, Ops.Flag(true)), Me, Hlc.Zero, Small));
        map = map.Join(CrdtMutator.Apply(map, Ops.Update("b", CrdtType.Flag, Ops.Flag(true)), Me, Hlc.Zero, Small));
        Refused(map, Ops.Update("c", CrdtType.Flag, Ops.Flag(true)), "FieldsPerMapMax");
        Refused(map, Ops.Remove("a", "b", "c", "d"), "ElementsPerOperationMax");
    }

    [Fact]
    public void AFieldKeepsOneType()
    {
        var map = Seeded(CrdtType.OrMap);
        string field = Ops.S(map.ToValue().Map.Entries[0].Field);
        Refused(map, Ops.Update(field, CrdtType.OrSet, Ops.SetAdd("x")), "a field keeps one type (OR_SET refused)", CrdtLimits.Default);
    }

    [Fact]
    public void MapsNestedTooDeepAreRefused()
    {
        var deep = Ops.Update("a", CrdtType.OrMap, Ops.Update("b", CrdtType.OrMap, Ops.Update("c", CrdtType.Flag, Ops.Flag(true))));
        Refused(CrdtState.Empty(CrdtType.OrMap), deep, "passes through 3 maps, over the limit of 2 (NestingDepthMax)");
    }

    [Fact]
    public void MalformedMvContextsAreRefused()
    {
        var mv = Seeded(CrdtType.MvRegister);
        Refused(mv, Ops.Assign("x", ByteString.CopyFrom(0xff, 0xff, 0xff)), "malformed MV_REGISTER context");
        var wrongVersion = new CrdtMvReadContext { FormatVersion = 7 };
        wrongVersion.Dots.Add(new CrdtStateDot { Replica = 1, Seq = 1 });
        Refused(mv, Ops.Assign("x", wrongVersion.ToByteString()), "format version 7");
        var zeroSeq = new CrdtMvReadContext { FormatVersion = 1 };
        zeroSeq.Dots.Add(new CrdtStateDot { Replica = 1, Seq = 0 });
        Refused(mv, Ops.Assign("x", zeroSeq.ToByteString()), "sequence number of at least 1");
        Refused(mv, Ops.Assign("x", new CrdtMvReadContext { FormatVersion = 1 }.ToByteString()), "names no siblings");
        Refused(mv, Ops.Assign("x", ByteString.CopyFrom(new byte[65])), "MvContextSizeBytesMax");
        Refused(Seeded(CrdtType.LwwRegister), Ops.Assign("x", mv.ToValue().Mv.Context), "MV_REGISTER writes only");
    }

    [Fact]
    public void AStateOverItsSizeLimitIsRefused()
    {
        var limits = CrdtLimits.Default with { StateSizeBytesMax = 200 };
        var set = CrdtState.Empty(CrdtType.OrSet);
        for (int i = 0; i < 100; i++)
        {
            try
            {
                set = set.Join(CrdtMutator.Apply(set, Ops.SetAdd($"element-{i}"), Me, Hlc.Zero, limits));
            }
            catch (CrdtException refused)
            {
                Assert.Contains("StateSizeBytesMax", refused.Message, StringComparison.Ordinal);
                Assert.True(set.SizeBytes <= 200);
                Assert.True(i > 0);
                return;
            }
        }

        Assert.Fail("the state grew past StateSizeBytesMax");
    }

    [Fact]
    public void MalformedStatesAreRefused()
    {
        Assert.Throws<CrdtException>(() => CrdtState.FromBytes([0xff, 0x01]));
        var record = new CrdtStateRecord { FormatVersion = 2, Type = CrdtType.Flag };
        Assert.Contains("format version 2", Assert.Throws<CrdtException>(() => CrdtState.FromBytes(record.ToByteArray())).Message, StringComparison.Ordinal);
        record = new CrdtStateRecord { FormatVersion = 1, Type = (CrdtType)42 };
        Assert.Contains("unknown type", Assert.Throws<CrdtException>(() => CrdtState.FromBytes(record.ToByteArray())).Message, StringComparison.Ordinal);

        // A dot in the store that the context has not seen would break the join.
        var set = new CrdtStateDotSet();
        set.Dots.Add(new CrdtStateDot { Replica = 1, Seq = 1 });
        record = new CrdtStateRecord { FormatVersion = 1, Type = CrdtType.Flag, Store = new CrdtStateStore { DotSet = set }, Context = new CrdtStateContext() };
        Assert.Contains("not in the causal context", Assert.Throws<CrdtException>(() => CrdtState.FromBytes(record.ToByteArray())).Message, StringComparison.Ordinal);

        // A store of the wrong shape for the type.
        record = new CrdtStateRecord { FormatVersion = 1, Type = CrdtType.GCounter, Store = new CrdtStateStore { DotSet = set } };
        Assert.Throws<CrdtException>(() => CrdtState.FromBytes(record.ToByteArray()));

        // The empty input is not a state.
        Assert.Throws<CrdtException>(() => CrdtState.FromBytes([]));
    }
}
