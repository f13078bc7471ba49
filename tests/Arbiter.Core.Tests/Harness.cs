using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Tests;

/// <summary>Drives a <see cref="StateMachine"/> with readable one-liners; every command gets the next log index.</summary>
internal sealed class Harness(StateMachine? machine = null)
{
    public StateMachine Sm { get; private set; } = machine ?? new StateMachine();

    public long Index { get; private set; } = machine?.AppliedIndex ?? 0;

    public long TimeMs { get; set; } = 1_000;

    public List<Event> LastEvents { get; private set; } = [];

    public static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    public static string S(ByteString b) => b.ToStringUtf8();

    public static ByteString Prefix(string s)
    {
        var bytes = B(s).ToByteArray();
        bytes[^1]++;
        return ByteString.CopyFrom(bytes);
    }

    public CommandResult Apply(Command command)
    {
        command.TimeMs = command.TimeMs == 0 ? TimeMs : command.TimeMs;
        var outcome = Sm.Apply(++Index, command);
        LastEvents = [.. outcome.Events];
        return outcome.Result;
    }

    public PutResponse Put(string key, string value, long lease = 0, bool prevKv = false) =>
        Ok(Apply(new Command { Put = new PutRequest { Key = B(key), Value = B(value), Lease = lease, PrevKv = prevKv } })).Put;

    public DeleteRangeResponse Delete(string key, string? rangeEnd = null, bool prevKv = false) =>
        Ok(Apply(new Command { DeleteRange = new DeleteRangeRequest { Key = B(key), RangeEnd = rangeEnd == null ? ByteString.Empty : B(rangeEnd), PrevKv = prevKv } })).DeleteRange;

    public TxnResponse Txn(TxnRequest txn) => Ok(Apply(new Command { Txn = txn })).Txn;

    public CompactionResponse Compact(long revision) => Ok(Apply(new Command { Compaction = new CompactionRequest { Revision = revision } })).Compaction;

    public LeaseGrantResponse Grant(long ttl, long id = 0) => Ok(Apply(new Command { LeaseGrant = new LeaseGrantRequest { TTL = ttl, ID = id } })).LeaseGrant;

    public LeaseRevokeResponse Revoke(long id) => Ok(Apply(new Command { LeaseRevoke = new LeaseRevokeRequest { ID = id } })).LeaseRevoke;

    public LeaseKeepAliveResponse KeepAlive(long id) => Ok(Apply(new Command { LeaseKeepAlive = new LeaseKeepAliveRequest { ID = id } })).LeaseKeepAlive;

    public LeaseExpireResult Expire(int max = 0) => Ok(Apply(new Command { LeaseExpire = new LeaseExpire { LeasesMax = max } })).LeaseExpire;

    public CommandError Error(Command command)
    {
        var result = Apply(command);
        Assert.Equal(CommandResult.ResultOneofCase.Error, result.ResultCase);
        return result.Error;
    }

    public RangeResponse Get(string key, string? rangeEnd = null, long revision = 0) =>
        Sm.Range(new RangeRequest { Key = B(key), RangeEnd = rangeEnd == null ? ByteString.Empty : B(rangeEnd), Revision = revision });

    public string? Value(string key) => Get(key).Kvs.SingleOrDefault() is { } kv ? S(kv.Value) : null;

    public static CommandResult Ok(CommandResult result)
    {
        Assert.True(result.ResultCase != CommandResult.ResultOneofCase.Error, result.Error?.Message);
        return result;
    }

    public static RequestOp OpPut(string key, string value, long lease = 0) => new() { RequestPut = new PutRequest { Key = B(key), Value = B(value), Lease = lease } };

    public static RequestOp OpGet(string key, string? rangeEnd = null) => new() { RequestRange = new RangeRequest { Key = B(key), RangeEnd = rangeEnd == null ? ByteString.Empty : B(rangeEnd) } };

    public static RequestOp OpDelete(string key, string? rangeEnd = null) => new() { RequestDeleteRange = new DeleteRangeRequest { Key = B(key), RangeEnd = rangeEnd == null ? ByteString.Empty : B(rangeEnd) } };

    public static RequestOp OpTxn(TxnRequest txn) => new() { RequestTxn = txn };

    public static Compare CmpVersion(string key, Compare.Types.CompareResult result, long version) =>
        new() { Key = B(key), Target = Compare.Types.CompareTarget.Version, Result = result, Version = version };

    public static Compare CmpValue(string key, Compare.Types.CompareResult result, string value) =>
        new() { Key = B(key), Target = Compare.Types.CompareTarget.Value, Result = result, Value = B(value) };

    public static void AssertError(EtcdError expected, CommandError actual)
    {
        Assert.Equal(expected.Message, actual.Message);
        Assert.Equal((int)expected.StatusCode, actual.StatusCode);
    }

    public static void AssertThrows(EtcdError expected, Action action)
    {
        var e = Assert.Throws<EtcdException>(action);
        Assert.Equal(expected, e.Error);
    }
}
