using System.Globalization;

namespace Arbiter.Verification.Nemeses;

/// <summary>
/// Debian's <c>libfaketime</c> (package <c>libfaketime</c>), preloaded into each member so that the
/// clock-skew nemesis can move that member's wall clock (<c>clock_gettime(CLOCK_REALTIME)</c>, which is
/// what .NET's <c>DateTime.UtcNow</c> reads) while the monotonic clock stays untouched
/// (<c>FAKETIME_DONT_FAKE_MONOTONIC=1</c>: Stopwatch, timers, Raft elections and lease time are not
/// moved). The offset lives in a small file per member that libfaketime re-reads at most once a
/// second, so it can be bumped and reset at run time.
/// </summary>
public static class FakeTime
{
    /// <summary>How often libfaketime re-reads the offset file, seconds (also the longest a change takes to show).</summary>
    public const int CacheDurationSeconds = 1;

    private static readonly string[] Candidates =
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
    ];

    /// <summary>
    /// The multi-threaded libfaketime library (or the one ARBITER_VERIFY_FAKETIME_LIBRARY names), or
    /// null if it is not installed.
    /// </summary>
    public static string? LibraryPath() =>
        System.Environment.GetEnvironmentVariable("ARBITER_VERIFY_FAKETIME_LIBRARY") is { Length: > 0 } given
            ? File.Exists(given) ? given : null
            : Candidates.FirstOrDefault(File.Exists);

    /// <summary>Why clock skew cannot be injected here, or null if it can.</summary>
    public static string? UnavailableReason() =>
        OperatingSystem.IsLinux()
            ? LibraryPath() is null ? "libfaketime is not installed (apt-get install libfaketime)" : null
            : "clock skew needs Linux and libfaketime";

    /// <summary>The environment that makes a process read its wall clock shifted by the offset in <paramref name="offsetFile"/>.</summary>
    public static IReadOnlyDictionary<string, string> Environment(string offsetFile) => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["LD_PRELOAD"] = LibraryPath() ?? throw new InvalidOperationException(UnavailableReason()),
        ["FAKETIME_TIMESTAMP_FILE"] = offsetFile,
        ["FAKETIME_CACHE_DURATION"] = CacheDurationSeconds.ToString(CultureInfo.InvariantCulture),
        ["FAKETIME_DONT_FAKE_MONOTONIC"] = "1",
    };

    /// <summary>Writes an offset (seconds, may be negative or fractional) atomically, readable by any uid.</summary>
    public static void WriteOffset(string offsetFile, double offsetSeconds)
    {
        var temporary = offsetFile + ".tmp";
        File.WriteAllText(temporary, offsetSeconds.ToString("+0.000;-0.000;+0", CultureInfo.InvariantCulture) + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, (UnixFileMode)0x1A4);
        }

        File.Move(temporary, offsetFile, overwrite: true);
    }
}
