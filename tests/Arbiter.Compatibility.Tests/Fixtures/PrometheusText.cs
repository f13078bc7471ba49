using System.Globalization;
using System.Text.RegularExpressions;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>One sample line: name, labels, value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// A scrape in the Prometheus text exposition format (0.0.4), parsed strictly enough for tests:
/// every sample belongs to a family declared by <c># TYPE</c>, histogram samples end in
/// <c>_bucket</c>/<c>_sum</c>/<c>_count</c>, and a malformed line throws.
/// </summary>
public sealed partial class PrometheusText
{
    private PrometheusText(Dictionary<string, string> types, List<PrometheusSample> samples)
    {
        Types = types;
        Samples = samples;
    }

    /// <summary>Family name → type (counter, gauge, histogram, summary, untyped).</summary>
    public IReadOnlyDictionary<string, string> Types { get; }

    public IReadOnlyList<PrometheusSample> Samples { get; }

    public static PrometheusText Parse(string text)
    {
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var samples = new List<PrometheusSample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', 4);
                if (parts.Length != 4 || parts[3] is not ("counter" or "gauge" or "histogram" or "summary" or "untyped"))
                {
                    throw new FormatException($"bad TYPE line: {line}");
                }

                if (!types.TryAdd(parts[2], parts[3]))
                {
                    throw new FormatException($"family declared twice: {line}");
                }

                continue;
            }

            if (line.StartsWith('#'))
            {
                continue;
            }

            var match = SampleLine().Match(line);
            if (!match.Success)
            {
                throw new FormatException($"bad sample line: {line}");
            }

            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match label in LabelPair().Matches(match.Groups["labels"].Value))
            {
                labels.Add(label.Groups["name"].Value, label.Groups["value"].Value.Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal));
            }

            var valueText = match.Groups["value"].Value;
            var value = valueText switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(valueText, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
            var name = match.Groups["name"].Value;
            if (FamilyOf(name, types) is null)
            {
                throw new FormatException($"sample of an undeclared family: {line}");
            }

            samples.Add(new PrometheusSample(name, labels, value));
        }

        return new PrometheusText(types, samples);
    }

    /// <summary>The family a sample name belongs to (histogram suffixes stripped), or null.</summary>
    public static string? FamilyOf(string sampleName, IReadOnlyDictionary<string, string> types)
    {
        if (types.ContainsKey(sampleName))
        {
            return sampleName;
        }

        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (sampleName.EndsWith(suffix, StringComparison.Ordinal) && types.TryGetValue(sampleName[..^suffix.Length], out var type) && type is "histogram" or "summary")
            {
                return sampleName[..^suffix.Length];
            }
        }

        return null;
    }

    /// <summary>The sum of the samples named <paramref name="name"/> whose labels include <paramref name="labels"/> (0 when none).</summary>
    public double Sum(string name, params (string Name, string Value)[] labels) =>
        Samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value)).Sum(s => s.Value);

    /// <summary>The label names of a family's samples (histogram buckets' <c>le</c> left out), in order.</summary>
    public IReadOnlySet<string> LabelNames(string family) =>
        Samples.Where(s => FamilyOf(s.Name, Types) == family).SelectMany(s => s.Labels.Keys).Where(k => k != "le").ToHashSet(StringComparer.Ordinal);

    /// <summary>GETs <c>{baseUrl}/metrics</c> (HTTP/1.1, as Prometheus scrapes) and parses it; a non-200 answer or another content type throws.</summary>
    public static async Task<PrometheusText> ScrapeAsync(HttpClient http, string baseUrl)
    {
        ArgumentNullException.ThrowIfNull(http);
        using var response = await http.GetAsync(new Uri($"{baseUrl}/metrics")).ConfigureAwait(false);
        if (response.StatusCode != System.Net.HttpStatusCode.OK || response.Content.Headers.ContentType?.MediaType != "text/plain")
        {
            throw new InvalidOperationException($"{baseUrl}/metrics answered {(int)response.StatusCode} {response.Content.Headers.ContentType}");
        }

        return Parse(await response.Content.ReadAsStringAsync().ConfigureAwait(false));
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)( -?\d+)?$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""(?<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?<value>(\\.|[^"\\])*)",?""")]
    private static partial Regex LabelPair();
}
