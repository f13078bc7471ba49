using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Server.Gateway;
using Google.Protobuf;
using Grpc.Core;

namespace Arbiter.Fuzz.Targets;

/// <summary>
/// The JSON gateway's request parsing (<see cref="GatewayBody"/>): the first byte picks a route's
/// request type (<see cref="RequestTypes.Gateway"/>), the rest is the body, parsed as a stream's
/// sequence of JSON objects; each message then runs the services' validation. Properties: only an
/// InvalidArgument <see cref="RpcException"/> reports a bad body; nothing else escapes; a parsed
/// message survives a protobuf round trip.
/// </summary>
public sealed class JsonGatewayTarget : FuzzTarget
{
    private static readonly CoreLimits Limits = new();

    public override string Name => "json-gateway";

    public override IEnumerable<byte[]> BuiltInSeeds() => Seeds.GatewayBodies();

    public override int Run(byte[] input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var typeIndex = input.Length == 0 ? 0 : input[0] % RequestTypes.Gateway.Count;
        var descriptor = RequestTypes.Gateway[typeIndex];
        var body = input.AsMemory(Math.Min(1, input.Length));
        var (messages, error) = GatewayBody.ParseMany(body, descriptor, countMax: 1000);
        if (error is not null && error.StatusCode != StatusCode.InvalidArgument)
        {
            throw new FuzzFindingException($"a bad body was answered with {error.StatusCode}, not InvalidArgument: {error.Status.Detail}");
        }

        var invalid = 0;
        foreach (var message in messages)
        {
            var reparsed = descriptor.Parser.ParseFrom(message.ToByteString());
            if (!reparsed.Equals(message))
            {
                throw new FuzzFindingException($"{descriptor.Name} does not survive a protobuf round trip: {message}");
            }

            var problem = message switch
            {
                RangeRequest r => RequestValidator.Validate(r, Limits),
                PutRequest p => RequestValidator.Validate(p, Limits),
                DeleteRangeRequest d => RequestValidator.Validate(d, Limits),
                TxnRequest t => RequestValidator.Validate(t, Limits),
                LeaseGrantRequest l => RequestValidator.Validate(l, Limits),
                _ => null,
            };
            invalid += problem is null ? 0 : 1;
        }

        return (typeIndex << 6) | (error is null ? 0 : 1) | (Math.Min(3, messages.Count) << 1) | (Math.Min(3, invalid) << 3);
    }
}
