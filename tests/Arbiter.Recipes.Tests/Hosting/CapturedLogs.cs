using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Arbiter.Recipes.Tests.Hosting;

/// <summary>A logger factory that keeps every entry (level and formatted message) for assertions.</summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

    public CapturedLogs() => Factory = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Trace).AddProvider(this));

    /// <summary>The factory to hand to the code under test.</summary>
    public ILoggerFactory Factory { get; }

    public IReadOnlyList<(LogLevel Level, string Message)> Entries => [.. _entries];

    /// <summary>Entries at <paramref name="level"/> or above.</summary>
    public IReadOnlyList<string> AtLeast(LogLevel level) => [.. _entries.Where(e => e.Level >= level).Select(e => e.Message)];

    public ILogger CreateLogger(string categoryName) => new Logger(_entries);

    public void Dispose() => Factory.Dispose();

    private sealed class Logger(ConcurrentQueue<(LogLevel Level, string Message)> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            entries.Enqueue((logLevel, formatter(state, exception)));
    }
}
