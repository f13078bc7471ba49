using Arbiter.Protocol.Etcd;

namespace Arbiter.Core;

/// <summary>
/// Stateless checks of client requests against <see cref="CoreLimits"/>, with etcd's errors.
/// Run at the API edge before anything is proposed; the core runs them again when applying.
/// </summary>
public static class RequestValidator
{
    /// <summary>Checks a Range; null when valid.</summary>
    public static EtcdError? Validate(RangeRequest request, CoreLimits limits) => throw new NotImplementedException();

    /// <summary>Checks a Put; null when valid.</summary>
    public static EtcdError? Validate(PutRequest request, CoreLimits limits) => throw new NotImplementedException();

    /// <summary>Checks a DeleteRange; null when valid.</summary>
    public static EtcdError? Validate(DeleteRangeRequest request, CoreLimits limits) => throw new NotImplementedException();

    /// <summary>Checks a Txn (op counts, nested ops, duplicate keys); null when valid.</summary>
    public static EtcdError? Validate(TxnRequest request, CoreLimits limits) => throw new NotImplementedException();

    /// <summary>Checks a LeaseGrant (TTL bounds); null when valid.</summary>
    public static EtcdError? Validate(LeaseGrantRequest request, CoreLimits limits) => throw new NotImplementedException();
}
