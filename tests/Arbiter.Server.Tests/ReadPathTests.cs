using Arbiter.Protocol.Etcd;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;

namespace Arbiter.Server.Tests;

/// <summary>Reads are served from the state, without a log write (no fsync on the read path).</summary>
public sealed class ReadPathTests
{
    private static ByteString B(string s) => ByteString.CopyFromUtf8(s);

    [Fact]
    public async Task ReadOnlyTxnAndAlarmListDoNotGoThroughTheLog()
    {
        await using var backend = await Backend.StartAsync(overGrpc: false);
        var put = await backend.Client.PutAsync(new PutRequest { Key = B("r"), Value = B("1") });
        var applied = backend.Node.AppliedIndex;

        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = B("r"), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = B("1") });
        txn.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = B("r") } });
        var response = await backend.Client.TxnAsync(txn);
        var alarms = await backend.Node.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get });
        var status = await backend.Client.StatusAsync();

        Assert.True(response.Succeeded);
        Assert.Equal("1", response.Responses[0].ResponseRange.Kvs[0].Value.ToStringUtf8());
        Assert.Equal(put.Header.Revision, response.Header.Revision);
        Assert.Equal(backend.Node.MemberId, response.Header.MemberId);
        Assert.Empty(alarms.Alarms);
        Assert.Empty(status.Errors);
        Assert.Equal(applied, backend.Node.AppliedIndex);
    }
}
