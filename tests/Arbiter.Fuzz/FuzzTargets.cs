using Arbiter.Fuzz.Targets;

namespace Arbiter.Fuzz;

/// <summary>The fuzz targets of the client port, by name.</summary>
public static class FuzzTargets
{
    /// <summary>Target names, in run order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["http2-edge", "hpack", "first-bytes", "grpc-requests", "core-commands", "json-gateway"];

    /// <summary>A fresh instance of the named target.</summary>
    public static FuzzTarget Create(string name) => name switch
    {
        "http2-edge" => new Http2EdgeTarget(),
        "hpack" => new HpackTarget(),
        "first-bytes" => new FirstBytesTarget(),
        "grpc-requests" => new CoreRequestsTarget(commands: false),
        "core-commands" => new CoreRequestsTarget(commands: true),
        "json-gateway" => new JsonGatewayTarget(),
        _ => throw new ArgumentException($"unknown fuzz target '{name}'; known: {string.Join(", ", Names)}", nameof(name)),
    };
}
