using System.Globalization;

namespace Arbiter.Node.Compaction;

/// <summary>How automatic compaction decides what history to drop (etcd's <c>--auto-compaction-mode</c>).</summary>
public enum AutoCompactionMode
{
    /// <summary>Keep the history of the last <see cref="AutoCompactionOptions.Retention"/> milliseconds.</summary>
    Periodic,

    /// <summary>Keep the last <see cref="AutoCompactionOptions.Retention"/> revisions.</summary>
    Revision,
}

/// <summary>
/// Automatic compaction, as etcd 3.4 runs it: periodic keeps a time window of history (compacting
/// every tenth of the window, at most hourly); revision keeps a number of revisions (checked every
/// five minutes). Only the leader proposes compactions.
/// </summary>
/// <param name="Mode">Periodic or revision.</param>
/// <param name="Retention">Milliseconds of history (periodic) or revisions (revision); positive.</param>
public sealed record AutoCompactionOptions(AutoCompactionMode Mode, long Retention)
{
    /// <summary>
    /// Parses etcd's flag values. A plain integer retention means hours in periodic mode and
    /// revisions in revision mode; periodic also takes a Go duration ("30m", "1h30m", "500ms").
    /// "0" turns automatic compaction off (<paramref name="options"/> null, no error).
    /// </summary>
    /// <param name="mode">"periodic" or "revision".</param>
    /// <param name="retention">The retention text.</param>
    /// <param name="options">The parsed options, or null when off or invalid.</param>
    /// <param name="error">Why the values are refused, or null.</param>
    /// <returns>False when the values are refused.</returns>
    public static bool TryParse(string mode, string retention, out AutoCompactionOptions? options, out string? error)
    {
        ArgumentNullException.ThrowIfNull(mode);
        ArgumentNullException.ThrowIfNull(retention);
        options = null;
        error = null;
        AutoCompactionMode parsedMode;
        switch (mode)
        {
            case "periodic": parsedMode = AutoCompactionMode.Periodic; break;
            case "revision": parsedMode = AutoCompactionMode.Revision; break;
            default:
                error = $"unknown auto-compaction-mode \"{mode}\" (periodic or revision)";
                return false;
        }

        long value;
        if (long.TryParse(retention, NumberStyles.None, CultureInfo.InvariantCulture, out var whole))
        {
            value = parsedMode == AutoCompactionMode.Periodic ? checked(whole * 3_600_000) : whole;
        }
        else if (parsedMode == AutoCompactionMode.Periodic && TryParseDurationMs(retention, out var durationMs))
        {
            value = durationMs;
        }
        else
        {
            error = parsedMode == AutoCompactionMode.Periodic
                ? $"invalid auto-compaction-retention \"{retention}\": hours, or a duration such as 30m or 1h30m"
                : $"invalid auto-compaction-retention \"{retention}\": a number of revisions";
            return false;
        }

        if (value > 0)
        {
            options = new AutoCompactionOptions(parsedMode, value);
        }

        return true;
    }

    /// <summary>Go's time.ParseDuration units, to the millisecond (sub-millisecond parts round down).</summary>
    private static bool TryParseDurationMs(string text, out long durationMs)
    {
        durationMs = 0;
        var rest = text.AsSpan();
        if (rest.IsEmpty)
        {
            return false;
        }

        double totalMs = 0;
        while (!rest.IsEmpty)
        {
            var numberLength = 0;
            while (numberLength < rest.Length && (char.IsAsciiDigit(rest[numberLength]) || rest[numberLength] == '.'))
            {
                numberLength++;
            }

            if (numberLength == 0 || !double.TryParse(rest[..numberLength], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            rest = rest[numberLength..];
            var unitLength = 0;
            while (unitLength < rest.Length && !char.IsAsciiDigit(rest[unitLength]) && rest[unitLength] != '.')
            {
                unitLength++;
            }

            double unitMs = rest[..unitLength] switch
            {
                "ns" => 1e-6,
                "us" or "µs" or "μs" => 1e-3,
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => double.NaN,
            };
            if (double.IsNaN(unitMs))
            {
                return false;
            }

            totalMs += number * unitMs;
            rest = rest[unitLength..];
        }

        if (totalMs >= long.MaxValue)
        {
            return false;
        }

        durationMs = (long)totalMs;
        return true;
    }
}
