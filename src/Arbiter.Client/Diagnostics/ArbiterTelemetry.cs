namespace Arbiter.Client.Diagnostics;

/// <summary>
/// The names to subscribe to for the SDK's traces and metrics, through .NET's own
/// <see cref="System.Diagnostics.ActivitySource"/> and <see cref="System.Diagnostics.Metrics.Meter"/>
/// (no OpenTelemetry dependency): with OpenTelemetry's .NET SDK,
/// <c>.AddSource(ArbiterTelemetry.ActivitySourceName)</c> and <c>.AddMeter(ArbiterTelemetry.MeterName)</c>.
/// Nothing is recorded while nobody listens. The spans and instruments are listed in docs/operations.md.
/// </summary>
public static class ArbiterTelemetry
{
    /// <summary>The SDK's <see cref="System.Diagnostics.ActivitySource"/> name (client and recipe spans).</summary>
    public const string ActivitySourceName = "Arbiter.Client";

    /// <summary>The SDK's <see cref="System.Diagnostics.Metrics.Meter"/> name (client and recipe instruments).</summary>
    public const string MeterName = "Arbiter.Client";

    /// <summary>The version the source and meter report: the Arbiter.Client assembly's.</summary>
    public static string? Version { get; } = typeof(ArbiterTelemetry).Assembly.GetName().Version?.ToString();

    /// <summary>
    /// The tag value naming a key without exposing it: the key up to and including its last
    /// <c>/</c> (e.g. <c>locks/orders/</c> for <c>locks/orders/694d1b2c</c>), at most
    /// <see cref="KeyPrefixLengthMax"/> characters; null when the key is not printable ASCII
    /// (binary keys are never put on a span) or has no <c>/</c>.
    /// </summary>
    public static string? KeyPrefixOf(ReadOnlySpan<byte> key)
    {
        var slash = key.LastIndexOf((byte)'/');
        if (slash < 0)
        {
            return null;
        }

        var prefix = key[..Math.Min(slash + 1, KeyPrefixLengthMax)];
        foreach (var b in prefix)
        {
            if (b is < 0x20 or > 0x7e)
            {
                return null;
            }
        }

        return System.Text.Encoding.ASCII.GetString(prefix);
    }

    /// <summary>The longest key prefix put on a span.</summary>
    public const int KeyPrefixLengthMax = 64;
}
