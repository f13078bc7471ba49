using System.Globalization;

namespace Arbiter.Server;

/// <summary>
/// The limits of the client port's connections, in one place (docs/security.md, "Limits and
/// hardening"). Each maps onto Kestrel's own limit or onto Arbiter's HTTP/2 edge middleware, and
/// each has a <c>serve</c> flag. Watches per stream and the request size are limits of the node
/// (<see cref="Arbiter.Node.NodeOptions.WatchesPerStreamMax"/>, <see cref="Arbiter.Core.CoreLimits.RequestSizeBytesMax"/>).
/// </summary>
public sealed record EdgeLimits
{
    /// <summary>
    /// Most streams (calls) open at once on one HTTP/2 connection (etcd's
    /// <c>--max-concurrent-streams</c>, unlimited there): advertised in SETTINGS_MAX_CONCURRENT_STREAMS;
    /// a stream past it is reset with REFUSED_STREAM. gRPC clients queue or open another connection.
    /// </summary>
    public int ConcurrentStreamsPerConnectionMax { get; init; } = 1000;

    /// <summary>
    /// Largest request header list (all header names and values of one request) and largest single
    /// header field, in bytes: HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE and Kestrel's header limits.
    /// A request past it is refused (HTTP/2: the connection ends with a COMPRESSION/PROTOCOL error).
    /// </summary>
    public int RequestHeaderBytesMax { get; init; } = 32 * 1024;

    /// <summary>
    /// Longest a client may take to send the HTTP/2 connection preface, a request's header block,
    /// or any one HTTP/2 frame it has begun, counting only time spent waiting for the client; also
    /// Kestrel's HTTP/1.1 request-header timeout. Past it the connection is closed (slowloris).
    /// </summary>
    public int RequestHeaderTimeoutMs { get; init; } = 10_000;

    /// <summary>How long a connection with no open stream or request may stay idle before the server closes it (Kestrel's keep-alive timeout).</summary>
    public int IdleConnectionTimeoutMs { get; init; } = 130_000;

    /// <summary>
    /// After this long without receiving anything on an HTTP/2 connection, the server sends a PING
    /// (etcd's <c>--grpc-keepalive-interval</c>, default 2h); 0 turns the pings off.
    /// </summary>
    public long KeepAlivePingIntervalMs { get; init; } = 2 * 60 * 60 * 1000;

    /// <summary>
    /// How long the server waits for anything after its keep-alive PING before closing the
    /// connection (etcd's <c>--grpc-keepalive-timeout</c>, default 20s); 0 waits forever.
    /// </summary>
    public long KeepAlivePingTimeoutMs { get; init; } = 20_000;

    /// <summary>Smallest <see cref="RequestHeaderBytesMax"/> accepted: room for gRPC's own headers and a JWT token.</summary>
    public const int RequestHeaderBytesMin = 4 * 1024;

    /// <summary>Largest <see cref="RequestHeaderBytesMax"/> accepted (the edge decodes header blocks up to 64 KiB).</summary>
    public const int RequestHeaderBytesCap = 64 * 1024;

    /// <summary>The limits' flag names with their problem, or null when every value is usable.</summary>
    public string? Validate()
    {
        if (ConcurrentStreamsPerConnectionMax < 1)
        {
            return $"--max-concurrent-streams {ConcurrentStreamsPerConnectionMax} must be at least 1";
        }

        if (RequestHeaderBytesMax is < RequestHeaderBytesMin or > RequestHeaderBytesCap)
        {
            return $"--max-request-header-bytes {RequestHeaderBytesMax} is outside {RequestHeaderBytesMin}-{RequestHeaderBytesCap}";
        }

        if (RequestHeaderTimeoutMs < 100)
        {
            return $"--request-header-timeout {RequestHeaderTimeoutMs}ms is below 100ms";
        }

        if (IdleConnectionTimeoutMs < 1000)
        {
            return $"--idle-connection-timeout {IdleConnectionTimeoutMs}ms is below 1s";
        }

        if (KeepAlivePingIntervalMs is > 0 and < 1000)
        {
            return $"--grpc-keepalive-interval {KeepAlivePingIntervalMs}ms must be 0 (off) or at least 1s";
        }

        if (KeepAlivePingTimeoutMs is > 0 and < 1000)
        {
            return $"--grpc-keepalive-timeout {KeepAlivePingTimeoutMs}ms must be 0 (none) or at least 1s";
        }

        return null;
    }

    /// <summary>
    /// Go's <c>time.ParseDuration</c> for the forms etcd's flags take (<c>20s</c>, <c>2h</c>,
    /// <c>1m30s</c>, <c>500ms</c>, <c>1.5h</c>, <c>0</c>), in ms; false when it is not one.
    /// </summary>
    public static bool TryParseDurationMs(string? text, out long durationMs)
    {
        durationMs = 0;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        if (text == "0")
        {
            return true;
        }

        var total = 0.0;
        var i = 0;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.'))
            {
                i++;
            }

            var unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i]))
            {
                i++;
            }

            if (start == unitStart || !double.TryParse(text.AsSpan(start, unitStart - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            double unitMs;
            switch (text[unitStart..i])
            {
                case "ms": unitMs = 1; break;
                case "s": unitMs = 1000; break;
                case "m": unitMs = 60_000; break;
                case "h": unitMs = 3_600_000; break;
                default: return false;
            }

            total += number * unitMs;
            if (total > long.MaxValue / 2)
            {
                return false;
            }
        }

        durationMs = (long)total;
        return true;
    }
}
