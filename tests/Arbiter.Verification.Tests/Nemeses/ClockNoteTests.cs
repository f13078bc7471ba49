using System.Globalization;
using Arbiter.Verification.Nemeses;
using Arbiter.Verification.Tests.Live;

namespace Arbiter.Verification.Tests.Nemeses;

/// <summary>
/// The clock-skew nemesis's history notes parse back to the offsets it set and read, for every sign,
/// including a read-back that rounds to zero from below (CI once saw "-+0.0" there, and the live test
/// could not find the read-back).
/// </summary>
public sealed class ClockNoteTests
{
    [Theory]
    [InlineData(0.682, 0.682)]
    [InlineData(-600.5, -600.5)]
    [InlineData(-0.1004, -0.1)]
    [InlineData(1000, 1000)]
    public void A_set_note_parses_back_to_its_offset(double offsetSeconds, double expected)
    {
        var match = ClockSkewTests.SetNote().Match(Nemesis.ClockSetNote("n1", offsetSeconds));
        Assert.True(match.Success, Nemesis.ClockSetNote("n1", offsetSeconds));
        Assert.Equal(expected, double.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture), 3);
    }

    [Theory]
    [InlineData(-0.0, 0.0)]
    [InlineData(-0.04, 0.0)]
    [InlineData(0.04, 0.0)]
    [InlineData(-1.0, -1.0)]
    [InlineData(3600.2, 3600.2)]
    public void A_report_note_parses_back_to_the_offset_read(double observedSeconds, double expected)
    {
        var note = Nemesis.ClockReportNote("n2", observedSeconds);
        var match = ClockSkewTests.ReportNote().Match(note);
        Assert.True(match.Success, note);
        Assert.Equal("n2", match.Groups[1].Value);
        Assert.Equal(expected, double.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture), 1);
    }

    [Fact]
    public void A_member_that_did_not_answer_is_said_so_and_is_not_read_as_an_offset()
    {
        var note = Nemesis.ClockReportNote("n3", null);
        Assert.Equal("n3 did not report its wall clock", note);
        Assert.DoesNotMatch(ClockSkewTests.ReportNote(), note);
    }
}
