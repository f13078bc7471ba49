using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Node.Compaction;
using Arbiter.Protocol.Etcd;
using Arbiter.Server.Tests.Infrastructure;
using Google.Protobuf;

namespace Arbiter.Server.Tests;

/// <summary>etcd's --auto-compaction-mode/--auto-compaction-retention: parsing, the schedule, and a running node.</summary>
public sealed class AutoCompactionTests
{
    [Theory]
    [InlineData("periodic", "1", AutoCompactionMode.Periodic, 3_600_000L)]
    [InlineData("periodic", "24", AutoCompactionMode.Periodic, 86_400_000L)]
    [InlineData("periodic", "30m", AutoCompactionMode.Periodic, 1_800_000L)]
    [InlineData("periodic", "1h30m", AutoCompactionMode.Periodic, 5_400_000L)]
    [InlineData("periodic", "1.5h", AutoCompactionMode.Periodic, 5_400_000L)]
    [InlineData("periodic", "500ms", AutoCompactionMode.Periodic, 500L)]
    [InlineData("revision", "1000", AutoCompactionMode.Revision, 1000L)]
    public void Retention_is_read_as_etcd_reads_it(string mode, string retention, AutoCompactionMode expectedMode, long expectedRetention)
    {
        Assert.True(AutoCompactionOptions.TryParse(mode, retention, out var options, out var error), error);
        Assert.Equal(new AutoCompactionOptions(expectedMode, expectedRetention), options);
    }

    [Theory]
    [InlineData("periodic", "0")]
    [InlineData("revision", "0")]
    [InlineData("periodic", "0s")]
    public void Zero_turns_it_off(string mode, string retention)
    {
        Assert.True(AutoCompactionOptions.TryParse(mode, retention, out var options, out var error), error);
        Assert.Null(options);
    }

    [Theory]
    [InlineData("periodic", "-1", "invalid auto-compaction-retention \"-1\"")]
    [InlineData("periodic", "1h30", "invalid auto-compaction-retention \"1h30\"")]
    [InlineData("periodic", "10d", "invalid auto-compaction-retention \"10d\"")]
    [InlineData("periodic", "", "invalid auto-compaction-retention \"\"")]
    [InlineData("revision", "10m", "invalid auto-compaction-retention \"10m\": a number of revisions")]
    [InlineData("weekly", "1", "unknown auto-compaction-mode \"weekly\"")]
    public void Bad_values_are_refused_with_the_reason(string mode, string retention, string expected)
    {
        Assert.False(AutoCompactionOptions.TryParse(mode, retention, out var options, out var error));
        Assert.Null(options);
        Assert.StartsWith(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Periodic_waits_a_period_then_compacts_to_the_revision_of_a_period_ago_every_tenth()
    {
        // 10 s retention: sample every second, first compaction after 10 s, then every 10 s.
        var schedule = new AutoCompactionSchedule(new AutoCompactionOptions(AutoCompactionMode.Periodic, 10_000), startMs: 0, startRevision: 100);
        Assert.Equal(1_000, schedule.CheckIntervalMs);

        long? due = null;
        long nowMs = 0;
        for (var second = 1; second <= 9; second++)
        {
            nowMs = second * 1_000;
            Assert.Null(schedule.Next(nowMs, revision: 100 + second));
        }

        nowMs = 10_000;
        due = schedule.Next(nowMs, revision: 110);
        Assert.Equal(100, due); // the oldest sample kept: the revision a period ago
        schedule.Succeeded(nowMs, due!.Value);

        // Nothing more until the next interval; then the window has moved on.
        for (var second = 11; second <= 19; second++)
        {
            Assert.Null(schedule.Next(second * 1_000, revision: 100 + second));
        }

        Assert.Equal(110, schedule.Next(20_000, revision: 120));
    }

    [Fact]
    public void Periodic_retries_at_the_next_check_when_a_compaction_failed()
    {
        var schedule = new AutoCompactionSchedule(new AutoCompactionOptions(AutoCompactionMode.Periodic, 1_000), startMs: 0, startRevision: 1);
        long? first = null;
        var nowMs = 0L;
        while (first is null)
        {
            nowMs += 100;
            first = schedule.Next(nowMs, revision: nowMs + 1);
        }

        Assert.Equal(1_000, nowMs);
        Assert.Equal(1, first);

        // Not reported as done: the next check proposes again, from the window that moved on.
        Assert.Equal(101, schedule.Next(nowMs + 100, revision: nowMs + 101));
    }

    [Fact]
    public void Periodic_longer_than_an_hour_compacts_hourly_sampling_every_six_minutes()
    {
        var schedule = new AutoCompactionSchedule(new AutoCompactionOptions(AutoCompactionMode.Periodic, 24 * 3_600_000L), startMs: 0, startRevision: 100);
        Assert.Equal(360_000, schedule.CheckIntervalMs);
    }

    [Fact]
    public void Revision_keeps_the_last_N_revisions_and_does_not_repeat_itself()
    {
        var schedule = new AutoCompactionSchedule(new AutoCompactionOptions(AutoCompactionMode.Revision, 1000), startMs: 0, startRevision: 100);
        Assert.Equal(AutoCompactionSchedule.RevisionCheckIntervalMs, schedule.CheckIntervalMs);
        Assert.Null(schedule.Next(0, revision: 1000));
        Assert.Equal(500, schedule.Next(0, revision: 1500));
        schedule.Succeeded(0, 500);
        Assert.Null(schedule.Next(0, revision: 1500));
        Assert.Equal(700, schedule.Next(0, revision: 1700));
    }

    [Fact]
    public async Task A_node_with_periodic_retention_compacts_its_history_by_itself()
    {
        await using var backend = await Backend.StartAsync(overGrpc: true, new NodeOptions
        {
            AutoCompaction = new AutoCompactionOptions(AutoCompactionMode.Periodic, 300),
        });
        var key = ByteString.CopyFromUtf8("auto/k");
        var first = await backend.Client.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("1") });
        await backend.Client.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("2") });

        await Eventually.TrueAsync(
            async () =>
            {
                try
                {
                    await backend.Client.RangeAsync(new RangeRequest { Key = key, Revision = first.Header.Revision });
                    return false;
                }
                catch (Exception e) when (e.Message.Contains(EtcdError.Compacted.Message, StringComparison.Ordinal))
                {
                    return true;
                }
            },
            TimeSpan.FromSeconds(30),
            "the first put's revision to be compacted away");

        // The latest value is untouched.
        var latest = await backend.Client.RangeAsync(new RangeRequest { Key = key });
        Assert.Equal("2", latest.Kvs[0].Value.ToStringUtf8());
    }
}
