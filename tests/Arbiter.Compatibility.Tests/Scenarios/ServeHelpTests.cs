using System.Text.RegularExpressions;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// <c>arbiter serve --help</c> lists only values that work (issue 18): every choice it shows as
/// <c>&lt;a|b|c&gt;</c> is accepted by the parser. Each value is given to a <c>serve</c> whose listen URL
/// is deliberately bad, so the process stops at the URL check, which runs only once every flag has
/// parsed: an error about the URL means the value was accepted; an error about the value means the help
/// offered something that does not work.
/// </summary>
public sealed partial class ServeHelpTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Every_choice_the_help_lists_is_accepted()
    {
        // A data dir (not --in-memory) so that cluster-only values are judged too; the URL check runs
        // before anything is created on disk, so it must never appear.
        var dataDir = Path.Combine(Path.GetTempPath(), $"arbiter-help-{Guid.NewGuid():N}");
        var help = await ArbiterCli.RunAsync("serve", "--help");
        Assert.True(help.ExitCode == 0, help.ToString());
        var choices = Choice().Matches(help.Stdout)
            .Select(m => (Option: m.Groups["option"].Value, Values: m.Groups["values"].Value.Split('|')))
            .ToList();

        // The help shows at least the log levels, the cluster state, the compaction mode and the OTLP protocol as choices.
        Assert.Superset(new HashSet<string>(StringComparer.Ordinal) { "--log-level", "--initial-cluster-state", "--auto-compaction-mode", "--otlp-protocol" }, choices.Select(c => c.Option).ToHashSet(StringComparer.Ordinal));
        foreach (var (option, values) in choices)
        {
            foreach (var value in values)
            {
                var run = await ArbiterCli.RunAsync("serve", "--data-dir", dataDir, "--listen-client-urls", "not-a-url", option, value);
                output.WriteLine($"{option} {value}: exit {run.ExitCode}: {run.Stderr.Trim()}");
                Assert.True(
                    run.ExitCode == 2 && run.StderrLines.Count == 1 && run.StderrLines[0].Contains("'not-a-url' is not a listen URL", StringComparison.Ordinal),
                    $"{option} {value} (listed by --help) was not accepted: {run}");
            }
        }

        Assert.False(Directory.Exists(dataDir), $"{dataDir} was created");

        // And the check can fail: a value the help does not list is refused before the URL check.
        var refused = await ArbiterCli.RunAsync("serve", "--in-memory", "--listen-client-urls", "not-a-url", "--log-level", "None");
        Assert.DoesNotContain("not-a-url", refused.Stderr, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^\s+(?<option>--[a-z-]+) <(?<values>[^>|]+(\|[^>|]+)+)>", RegexOptions.Multiline)]
    private static partial Regex Choice();
}
