using Google.Protobuf.Reflection;

namespace Arbiter.Fuzz.Targets;

/// <summary>Every request message the client port accepts: the input types of every gRPC service Arbiter serves.</summary>
public static class RequestTypes
{
    /// <summary>The services' files: etcd's, v3lock, v3election, health, arbiter.v1 and the member-to-member services.</summary>
    public static IReadOnlyList<FileDescriptor> Files { get; } =
    [
        Protocol.Etcd.RpcReflection.Descriptor,
        Protocol.Lock.V3LockReflection.Descriptor,
        Protocol.Election.V3ElectionReflection.Descriptor,
        Protocol.Health.HealthReflection.Descriptor,
        Protocol.Transactions.TransactionsReflection.Descriptor,
        Protocol.Crdt.CrdtReflection.Descriptor,
        Protocol.Internal.PeerReflection.Descriptor,
        Protocol.Internal.CrdtPeerReflection.Descriptor,
    ];

    /// <summary>Distinct request types, in a fixed order (by full name).</summary>
    public static IReadOnlyList<MessageDescriptor> All { get; } =
        [.. Files.SelectMany(f => f.Services).SelectMany(s => s.Methods).Select(m => m.InputType).DistinctBy(d => d.FullName).OrderBy(d => d.FullName, StringComparer.Ordinal)];

    /// <summary>Request types of the services the JSON gateway serves (etcd's, v3lock, v3election).</summary>
    public static IReadOnlyList<MessageDescriptor> Gateway { get; } =
        [.. Files.Take(3).SelectMany(f => f.Services).SelectMany(s => s.Methods).Select(m => m.InputType).DistinctBy(d => d.FullName).OrderBy(d => d.FullName, StringComparer.Ordinal)];
}
