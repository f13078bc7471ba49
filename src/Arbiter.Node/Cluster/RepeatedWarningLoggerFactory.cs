using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Arbiter.Node.Cluster;

/// <summary>
/// The logger factory handed to DotNext. DotNext logs a warning, with a full stack trace, for every
/// failed request to an unreachable member: with a 50 ms heartbeat that is ten multi-line warnings
/// a second per member for as long as it is down. This keeps the first warning of each distinct
/// message, then at most one per <see cref="RepeatIntervalMs"/> with the number left out, and shows
/// the exception as its type and message only. A refused snapshot install while the image is still
/// being fetched (<see cref="SnapshotImageNotReadyException"/>, expected and retried by the leader;
/// DotNext logs it as a failure) goes the same way at Information, and so do the warnings of a
/// healthy start: members not up yet during the first <paramref name="startGraceMs"/>, and the
/// "replication failed, retry from entry N" of Raft's ordinary log matching (a follower behind).
/// Everything else — other levels, and all of it when Debug logging is on — passes through unchanged.
/// </summary>
internal sealed class RepeatedWarningLoggerFactory(ILoggerFactory inner, TimeProvider time, long startGraceMs = 0) : ILoggerFactory
{
    /// <summary>How long after a member starts its peers not being up yet is no warning (they start one by one).</summary>
    public const long StartGraceMsDefault = 30_000;

    private readonly long _startedAt = time.GetTimestamp();

    /// <summary>How often a repeated warning is logged again.</summary>
    public const int RepeatIntervalMs = 30_000;

    /// <summary>Distinct messages remembered; some carry log indexes, so the set is cleared when it grows past this.</summary>
    private const int MessagesRememberedMax = 1024;

    private readonly ConcurrentDictionary<string, Repeats> _seen = new(StringComparer.Ordinal);

    public ILogger CreateLogger(string categoryName) => new Logger(inner.CreateLogger(categoryName), this);

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    /// <summary>The inner factory belongs to the node; nothing to release here.</summary>
    public void Dispose()
    {
    }

    /// <summary>Whether a warning now is part of an ordinary start or catch-up, so worth Information only.</summary>
    private bool IsExpectedWarning(string message) =>
        time.GetElapsedTime(_startedAt).TotalMilliseconds < startGraceMs
        || (message.StartsWith("Replication of ", StringComparison.Ordinal) && message.Contains("Retry replication from entry", StringComparison.Ordinal));

    /// <summary>Whether to log this occurrence of <paramref name="message"/>, and how many were left out since the last one logged.</summary>
    private bool ShouldLog(string message, out long suppressed)
    {
        var now = time.GetTimestamp();
        if (_seen.Count > MessagesRememberedMax)
        {
            _seen.Clear();
        }

        var repeats = _seen.GetOrAdd(message, _ => new Repeats());
        lock (repeats)
        {
            if (repeats.LoggedAt is { } last && time.GetElapsedTime(last, now).TotalMilliseconds < RepeatIntervalMs)
            {
                repeats.Suppressed++;
                suppressed = 0;
                return false;
            }

            suppressed = repeats.Suppressed;
            repeats.Suppressed = 0;
            repeats.LoggedAt = now;
            return true;
        }
    }

    private sealed class Repeats
    {
        public long? LoggedAt { get; set; }

        public long Suppressed { get; set; }
    }

    private sealed class Logger(ILogger inner, RepeatedWarningLoggerFactory owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var expectedRefusal = IsImageNotReady(exception);
            if ((logLevel != LogLevel.Warning && !expectedRefusal) || inner.IsEnabled(LogLevel.Debug))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                return;
            }

            var message = formatter(state, null);
            var expected = expectedRefusal || owner.IsExpectedWarning(message);

            // Expected ones are counted apart, so that the first real warning after the start still shows.
            if (!owner.ShouldLog(expected ? "expected: " + message : message, out var suppressed))
            {
                return;
            }

            var cause = exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})";
            var repeats = suppressed == 0 ? "" : $"; {suppressed} more like it in the last {RepeatIntervalMs / 1000} s";
            inner.Log(expected ? LogLevel.Information : logLevel, eventId, "{Message}{Cause}{Repeats}", message, cause, repeats);
        }

        private static bool IsImageNotReady(Exception? exception)
        {
            for (var e = exception; e is not null; e = e.InnerException)
            {
                if (e is SnapshotImageNotReadyException)
                {
                    return true;
                }
            }

            return false;
        }
    }
}
