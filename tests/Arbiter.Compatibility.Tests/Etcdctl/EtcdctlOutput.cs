using System.Globalization;
using System.Text.RegularExpressions;

namespace Arbiter.Compatibility.Tests.Etcdctl;

/// <summary>
/// Parsing of etcdctl 3.4's human-readable lines. Some of them print ids with <c>%16x</c>, which pads
/// with spaces: an id with 15 hex digits comes out as "Member  abc… added", so splitting on single
/// spaces finds an empty word. Parse with patterns that allow any run of spaces instead.
/// </summary>
public static partial class EtcdctlOutput
{
    /// <summary>
    /// The member id (lower-case hex, no padding) in etcdctl's "Member %16x added to cluster %16x",
    /// "… removed from cluster …" or "… updated in cluster …" line.
    /// </summary>
    public static string MemberId(string line)
    {
        var match = MemberChangeLine().Match(line);
        return match.Success
            ? match.Groups["id"].Value
            : throw new FormatException($"not an etcdctl member change line: \"{line}\"");
    }

    /// <summary>The member id as a number.</summary>
    public static ulong MemberIdValue(string line) => ulong.Parse(MemberId(line), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>True when <paramref name="stdout"/> says that member <paramref name="memberIdHex"/> was removed, however it is padded.</summary>
    public static bool SaysRemoved(string stdout, string memberIdHex) =>
        stdout.Split('\n').Any(line => MemberChangeLine().Match(line) is { Success: true } match
            && match.Groups["verb"].Value == "removed from"
            && match.Groups["id"].Value == memberIdHex);

    [GeneratedRegex(@"^Member +(?<id>[0-9a-f]+) (?<verb>added to|removed from|updated in) cluster +[0-9a-f]+\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex MemberChangeLine();
}
