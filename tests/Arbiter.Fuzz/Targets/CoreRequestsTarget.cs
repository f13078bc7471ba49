using Arbiter.Core;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Arbiter.Fuzz.Targets;

/// <summary>
/// Request decoding and what follows it in the deterministic core. The first byte picks a request
/// type (<see cref="RequestTypes.All"/>; or, for the commands target, the input is a
/// <see cref="Command"/>, as the member-to-member Propose call takes); the rest is parsed as that
/// protobuf message. A parsed request runs the validation the services run before proposing
/// (<see cref="RequestValidator"/>), a Range is served, and a request that is a command is applied
/// to two state machines. Properties: parsing fails only with <see cref="InvalidProtocolBufferException"/>;
/// the core never throws for bad input (its contract); both machines end with the same state hash
/// (determinism), checked at every reset.
/// </summary>
public sealed class CoreRequestsTarget : FuzzTarget
{
    private static readonly Dictionary<string, FieldDescriptor> CommandFields =
        Command.Descriptor.Fields.InDeclarationOrder()
            .Where(f => f.FieldType == FieldType.Message && f.RealContainingOneof is not null)
            .GroupBy(f => f.MessageType.FullName)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);

    private readonly bool _commands;
    private readonly IReadOnlyList<MessageDescriptor> _types;
    private StateMachine _machine = new();
    private StateMachine _mirror = new();
    private long _index;

    /// <param name="commands">Parse the input as a <see cref="Command"/> rather than as a client request.</param>
    public CoreRequestsTarget(bool commands)
    {
        _commands = commands;
        _types = commands ? [Command.Descriptor] : RequestTypes.All;
    }

    public override string Name => _commands ? "core-commands" : "grpc-requests";

    // The machines keep what earlier inputs wrote (up to ResetEveryInputs of them), so a Range may
    // return all of it: the bound covers that state, not just the input.
    public override long AllocationBytesMax(int inputLength) => (32L * 1024 * 1024) + (256L * inputLength);

    public override int ResetEveryInputs => 1000;

    public override IEnumerable<byte[]> BuiltInSeeds() => _commands ? Seeds.Commands() : Seeds.GrpcRequests();

    public override void Reset()
    {
        var hash = _machine.Hash();
        var mirrorHash = _mirror.Hash();
        if (hash != mirrorHash)
        {
            throw new FuzzFindingException($"two machines fed the same commands disagree: state hash {hash:x8} vs {mirrorHash:x8}");
        }

        _machine = new StateMachine();
        _mirror = new StateMachine();
        _index = 0;
    }

    public override int Run(byte[] input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var typeIndex = _commands || input.Length == 0 ? 0 : input[0] % _types.Count;
        var skip = _commands ? 0 : Math.Min(1, input.Length);
        var type = _types[typeIndex];
        IMessage message;
        try
        {
            message = type.Parser.ParseFrom(input, skip, input.Length - skip);
        }
        catch (InvalidProtocolBufferException)
        {
            return typeIndex << 4;
        }

        var invalid = message switch
        {
            RangeRequest r => RequestValidator.Validate(r, _machine.Limits),
            PutRequest p => RequestValidator.Validate(p, _machine.Limits),
            DeleteRangeRequest d => RequestValidator.Validate(d, _machine.Limits),
            TxnRequest t => RequestValidator.Validate(t, _machine.Limits),
            LeaseGrantRequest l => RequestValidator.Validate(l, _machine.Limits),
            _ => null,
        };
        var outcome = (typeIndex << 4) | 1 | (invalid is null ? 0 : 2);
        if (message is RangeRequest range)
        {
            try
            {
                _machine.Range(range);
            }
            catch (EtcdException)
            {
                outcome |= 4;
            }

            return outcome;
        }

        var command = message as Command;
        if (command is null && CommandFields.TryGetValue(type.FullName, out var field))
        {
            command = new Command { TimeMs = 1000 + _index };
            field.Accessor.SetValue(command, message);
        }

        if (command is null)
        {
            return outcome;
        }

        _index++;
        var result = _machine.Apply(_index, command).Result;
        var mirrorResult = _mirror.Apply(_index, command.Clone()).Result;
        if (!result.Equals(mirrorResult))
        {
            throw new FuzzFindingException($"two machines answered the same command differently: {result} vs {mirrorResult}");
        }

        return outcome | (result.ResultCase == CommandResult.ResultOneofCase.Error ? 8 : 0) | ((int)result.ResultCase << 12);
    }
}
