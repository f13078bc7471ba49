using System.Globalization;

namespace Arbiter.Bench;

/// <summary>CPU time and memory of a local process, from Linux /proc (NaN elsewhere or when it is gone).</summary>
public static class ProcessStats
{
    // USER_HZ is 100 on every mainstream Linux configuration.
    private const double ClockTicksPerSecond = 100;

    /// <summary>User + system CPU seconds consumed so far by <paramref name="pid"/>.</summary>
    public static double CpuSeconds(int pid)
    {
        if (pid <= 0)
        {
            return double.NaN;
        }

        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the parenthesized command name; utime and stime are fields 14 and 15 overall.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
            var stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
            return (utime + stime) / ClockTicksPerSecond;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    /// <summary>Resident set size of <paramref name="pid"/> in MiB.</summary>
    public static double RssMiB(int pid)
    {
        if (pid <= 0)
        {
            return double.NaN;
        }

        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var kib = long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                    return kib / 1024.0;
                }
            }

            return double.NaN;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }
}
