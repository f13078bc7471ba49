using Arbiter.Verification.Workloads;

namespace Arbiter.Verification.Tests.Workloads;

/// <summary>The workload knobs are checked before a cluster is started, each with its own name in the error.</summary>
public sealed class WorkloadOptionsTests
{
    [Fact]
    public void Defaults_and_the_weak_mode_are_valid()
    {
        new WorkloadOptions().Validate();
        new WorkloadOptions { SerializableReads = true, PinnedReadersPerMember = 1 }.Validate();
    }

    [Theory]
    [InlineData("clients")]
    [InlineData("keys")]
    [InlineData("call timeout")]
    [InlineData("pinned readers")]
    [InlineData("lease TTL")]
    public void A_knob_out_of_range_is_named(string knob)
    {
        var options = knob switch
        {
            "clients" => new WorkloadOptions { Clients = 0 },
            "keys" => new WorkloadOptions { Keys = -1 },
            "call timeout" => new WorkloadOptions { CallTimeoutMs = 0 },
            "pinned readers" => new WorkloadOptions { PinnedReadersPerMember = -1 },
            _ => new WorkloadOptions { LeaseTtlSeconds = 0 },
        };
        var error = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains(knob, error.Message, StringComparison.Ordinal);
    }
}
