using Arbiter.Node.Cluster;
using Microsoft.Extensions.Logging;

namespace Arbiter.Server.Tests;

/// <summary>DotNext's per-heartbeat "member unavailable" warnings are thinned out, without losing the first one or the count.</summary>
public sealed class RepeatedWarningLoggerFactoryTests
{
    [Fact]
    public void A_repeated_warning_is_logged_once_per_interval_with_the_count_and_without_the_stack_trace()
    {
        var sink = new Sink(LogLevel.Information);
        var clock = new ManualClock();
        using var inner = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Information));
        using var factory = new RepeatedWarningLoggerFactory(inner, clock);
        var logger = factory.CreateLogger("DotNext.Net.Cluster.Consensus.Raft.RaftCluster");
        var failure = Thrown(new System.Net.Sockets.SocketException(111));

        for (var i = 0; i < 100; i++)
        {
            logger.LogWarning(failure, "Cluster member {Member} is unavailable", "127.0.0.1:22380");
            logger.LogWarning(failure, "Cluster member {Member} is unavailable", "127.0.0.1:32380");
            clock.AdvanceMs(100);
        }

        clock.AdvanceMs(RepeatedWarningLoggerFactory.RepeatIntervalMs);
        logger.LogWarning(failure, "Cluster member {Member} is unavailable", "127.0.0.1:22380");
        logger.LogError(failure, "Something else failed");
        logger.LogInformation("Leader changed");

        var warnings = sink.Entries.Where(e => e.Level == LogLevel.Warning).ToList();
        Assert.Equal(3, warnings.Count);
        Assert.StartsWith("Cluster member 127.0.0.1:22380 is unavailable (SocketException: ", warnings[0].Message, StringComparison.Ordinal);
        Assert.StartsWith("Cluster member 127.0.0.1:32380 is unavailable", warnings[1].Message, StringComparison.Ordinal);
        Assert.EndsWith("; 99 more like it in the last 30 s", warnings[2].Message, StringComparison.Ordinal);
        Assert.All(warnings, w => Assert.Null(w.Exception));

        // Errors keep their exception; other levels pass unchanged.
        Assert.Same(failure, sink.Entries.Single(e => e.Level == LogLevel.Error).Exception);
        Assert.Single(sink.Entries, e => e.Level == LogLevel.Information);
    }

    [Fact]
    public void A_refused_install_while_the_image_is_fetched_is_information_without_the_stack_trace()
    {
        var sink = new Sink(LogLevel.Information);
        var clock = new ManualClock();
        using var inner = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Information));
        using var factory = new RepeatedWarningLoggerFactory(inner, clock);
        var logger = factory.CreateLogger("DotNext.Net.Cluster.Consensus.Raft.RaftCluster");
        var refused = Thrown(new InvalidOperationException("wrapped", new SnapshotImageNotReadyException(new SnapshotTicket(40_000, 3, 36_000_000, new byte[32]))));

        for (var i = 0; i < 20; i++)
        {
            logger.LogError(refused, "Failed to process request from {Member}", "127.0.0.1:22380");
            clock.AdvanceMs(100);
        }

        logger.LogError(Thrown(new IOException("disk")), "Failed to process request from {Member}", "127.0.0.1:22380");

        var entry = Assert.Single(sink.Entries, e => e.Level == LogLevel.Information);
        Assert.Contains("(InvalidOperationException: wrapped)", entry.Message, StringComparison.Ordinal);
        Assert.Null(entry.Exception);

        // Any other failure is still an error with its exception.
        Assert.IsType<IOException>(Assert.Single(sink.Entries, e => e.Level == LogLevel.Error).Exception);
    }

    [Fact]
    public void Members_not_up_during_the_start_grace_and_log_matching_retries_are_information()
    {
        var sink = new Sink(LogLevel.Information);
        var clock = new ManualClock();
        using var inner = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Information));
        using var factory = new RepeatedWarningLoggerFactory(inner, clock, startGraceMs: 10_000);
        var logger = factory.CreateLogger("DotNext.Net.Cluster.Consensus.Raft.RaftCluster");
        var refused = Thrown(new System.Net.Sockets.SocketException(111));

        logger.LogWarning(refused, "Cluster member {Member} is unavailable", "127.0.0.1:22380");
        clock.AdvanceMs(10_000);
        logger.LogWarning(refused, "Cluster member {Member} is unavailable", "127.0.0.1:22380");
        logger.LogWarning("Replication of {Member} is failed. Retry replication from entry {Index}", "127.0.0.1:22380", 2);

        Assert.Collection(
            sink.Entries,
            e => Assert.Equal((LogLevel.Information, "Cluster member 127.0.0.1:22380 is unavailable (SocketException: Connection refused)"), (e.Level, e.Message)),
            e => Assert.Equal((LogLevel.Warning, "Cluster member 127.0.0.1:22380 is unavailable (SocketException: Connection refused)"), (e.Level, e.Message)),
            e => Assert.Equal((LogLevel.Information, "Replication of 127.0.0.1:22380 is failed. Retry replication from entry 2"), (e.Level, e.Message)));
    }

    [Fact]
    public void With_debug_logging_every_warning_passes_with_its_exception()
    {
        var sink = new Sink(LogLevel.Debug);
        using var inner = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Debug));
        using var factory = new RepeatedWarningLoggerFactory(inner, new ManualClock());
        var logger = factory.CreateLogger("DotNext");
        var failure = Thrown(new IOException("peer closed"));
        for (var i = 0; i < 5; i++)
        {
            logger.LogWarning(failure, "Cluster member {Member} is unavailable", "m2");
        }

        Assert.Equal(5, sink.Entries.Count);
        Assert.All(sink.Entries, e => Assert.Same(failure, e.Exception));
    }

    private static Exception Thrown(Exception exception)
    {
        try
        {
            throw exception;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void AdvanceMs(long milliseconds) => _ticks += milliseconds * TimeSpan.TicksPerMillisecond;
    }

    private sealed record Entry(LogLevel Level, string Message, Exception? Exception);

    private sealed class Sink(LogLevel minimum) : ILoggerProvider, ILogger
    {
        public List<Entry> Entries { get; } = [];

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add(new Entry(logLevel, formatter(state, exception), exception));

        public void Dispose()
        {
        }
    }
}
