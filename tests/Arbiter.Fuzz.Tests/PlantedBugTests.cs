using Google.Protobuf;

namespace Arbiter.Fuzz.Tests;

/// <summary>
/// The harness can fail: test-only targets with a planted defect of each kind the harness checks
/// (a crash from an off-by-one length check, an allocation sized by an untrusted length, a loop
/// that never ends), started from a seed corpus that does not trigger them, are found within the
/// default run's budget of inputs.
/// </summary>
public sealed class PlantedBugTests(ITestOutputHelper output)
{
    private const int Inputs = 200_000;

    [Fact]
    public void AnOffByOneLengthCheckIsFound()
    {
        var report = Run(new PlantedTarget(PlantedTarget.Defect.OffByOne));
        Assert.Equal("crash", report.Failure?.Kind);
        Assert.Contains("IndexOutOfRange", report.Failure!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnAllocationSizedByAnUntrustedLengthIsFound()
    {
        var report = Run(new PlantedTarget(PlantedTarget.Defect.UntrustedAllocation));
        Assert.Equal("allocation", report.Failure?.Kind);
    }

    [Fact]
    public void ALoopThatNeverEndsIsFound()
    {
        var target = new PlantedTarget(PlantedTarget.Defect.EndlessLoop);
        try
        {
            var report = Run(target, hangMs: 1000);
            Assert.Equal("hang", report.Failure?.Kind);
        }
        finally
        {
            // Lets the abandoned fuzzing thread out, so that it does not spin for the rest of the run.
            target.Release();
        }
    }

    private FuzzReport Run(PlantedTarget target, int hangMs = FuzzEngine.HangMsDefault)
    {
        var seed = FuzzEngine.SeedFromEnvironment();
        output.WriteLine($"seed {seed} (replay: ARBITER_TEST_SEED={seed})");

        // The seeds themselves are fine.
        foreach (var entry in target.BuiltInSeeds())
        {
            target.Run(entry);
        }

        var report = FuzzEngine.Run(target, [], Inputs, seed, hangMs);
        output.WriteLine(report.ToString());
        output.WriteLine($"input (hex): {Convert.ToHexString(report.Failure?.Input ?? [])}");
        Assert.NotNull(report.Failure);
        return report;
    }

    /// <summary>Reads length-prefixed records (a protobuf-like layout), with one planted defect.</summary>
    private sealed class PlantedTarget(PlantedTarget.Defect defect) : FuzzTarget
    {
        private volatile bool _released;

        public enum Defect
        {
            OffByOne,
            UntrustedAllocation,
            EndlessLoop,
        }

        public override string Name => $"planted-{defect}";

        public override long AllocationBytesMax(int inputLength) => (1024 * 1024) + (256L * inputLength);

        public void Release() => _released = true;

        public override IEnumerable<byte[]> BuiltInSeeds() =>
        [
            new Protocol.Etcd.PutRequest { Key = ByteString.CopyFromUtf8("foo"), Value = ByteString.CopyFromUtf8("bar") }.ToByteArray(),
            new Protocol.Etcd.RangeRequest { Key = ByteString.CopyFromUtf8("a"), RangeEnd = ByteString.CopyFromUtf8("b"), Limit = 5 }.ToByteArray(),
        ];

        public override int Run(byte[] input)
        {
            var offset = 0;
            var checksum = 0;
            while (offset + 1 < input.Length)
            {
                var tag = input[offset];
                var length = input[offset + 1];
                offset += 2;
                var remaining = input.Length - offset;
                switch (defect)
                {
                    case Defect.OffByOne:
                        // Planted: should be "length > remaining".
                        if (length > remaining + 1)
                        {
                            return -1;
                        }

                        if (length > 0)
                        {
                            checksum += input[offset + length - 1];
                        }

                        break;
                    case Defect.UntrustedAllocation:
                        if (length > remaining)
                        {
                            return -1;
                        }

                        // Planted: a size taken from the input without a bound. A record of 33+
                        // bytes is enough to reach it (a 200-byte one was not reached within the
                        // input budget by some seeds: the test depended on luck).
                        if (tag == 0x12 && length > 32)
                        {
                            checksum += new byte[length * 256 * 1024].Length;
                        }

                        break;
                    case Defect.EndlessLoop:
                        if (length > remaining)
                        {
                            return -1;
                        }

                        // Planted: a zero-length record of tag 0x10 never advances.
                        while (tag == 0x10 && length == 0 && !_released)
                        {
                            checksum++;
                        }

                        break;
                }

                offset += Math.Min(length, remaining);
            }

            return checksum & 0xF;
        }
    }
}
