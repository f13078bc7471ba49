using System.Text;

namespace Arbiter.Storage.Tests;

public sealed class Crc32CTests
{
    [Theory]
    [InlineData("", 0x0000_0000u)]
    [InlineData("a", 0xC1D0_4330u)]
    [InlineData("123456789", 0xE306_9283u)]
    [InlineData("The quick brown fox jumps over the lazy dog", 0x2262_0404u)]
    public void Matches_the_published_check_values(string text, uint expected)
    {
        Assert.Equal(expected, Crc32C.Compute(Encoding.ASCII.GetBytes(text)));
    }

    [Fact]
    public void Incremental_equals_one_shot()
    {
        byte[] data = new byte[1000];
        new Random(7).NextBytes(data);
        uint state = Crc32C.Append(Crc32C.Start, data.AsSpan(0, 333));
        state = Crc32C.Append(state, data.AsSpan(333));
        Assert.Equal(Crc32C.Compute(data), Crc32C.Finish(state));
    }
}
