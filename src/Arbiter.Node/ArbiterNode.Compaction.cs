using System.Diagnostics;
using Arbiter.Core;
using Arbiter.Node.Compaction;
using Arbiter.Protocol.Etcd;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    private void StartAutoCompaction()
    {
        if (Options.AutoCompaction is { } auto)
        {
            _logger.LogInformation("Automatic compaction: {Mode}, retention {Retention}", auto.Mode, DescribeRetention(auto));
            _compactionLoop = Task.Run(() => AutoCompactionLoopAsync(auto), CancellationToken.None);
        }
    }

    /// <summary>
    /// Samples the revision on the schedule and, on the leader, proposes a compaction when one is
    /// due. Every member samples, so a new leader already knows the revisions of the last period.
    /// </summary>
    private async Task AutoCompactionLoopAsync(AutoCompactionOptions auto)
    {
        var token = _stopping.Token;
        var schedule = new AutoCompactionSchedule(auto, Options.Clock.NowMs, Revision);
        while (!token.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(schedule.CheckIntervalMs), token).ConfigureAwait(false);
            var target = schedule.Next(Options.Clock.NowMs, Revision);
            if (target is not { } revision || !_log.IsLeader)
            {
                continue;
            }

            var started = Stopwatch.GetTimestamp();
            try
            {
                await CompactAsync(new CompactionRequest { Revision = revision }, token).ConfigureAwait(false);
                schedule.Succeeded(Options.Clock.NowMs, revision);
                _logger.LogInformation(
                    "Automatic compaction to revision {Revision} done in {ElapsedMs:F1} ms", revision, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (EtcdException e) when (e.Error == EtcdError.Compacted)
            {
                // Someone compacted at least as far already: as good as done.
                schedule.Succeeded(Options.Clock.NowMs, revision);
            }
            catch (EtcdException e)
            {
                _logger.LogWarning("Automatic compaction to revision {Revision} failed, retrying later: {Message}", revision, e.Message);
            }
        }
    }

    private static string DescribeRetention(AutoCompactionOptions auto) =>
        auto.Mode == AutoCompactionMode.Periodic ? TimeSpan.FromMilliseconds(auto.Retention).ToString() : $"{auto.Retention} revisions";
}
