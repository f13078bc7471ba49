using System.Security.Cryptography.X509Certificates;
using Arbiter.Core;
using Arbiter.Core.Auth;
using Arbiter.Node;
using Arbiter.Node.Auth;
using Arbiter.Protocol.Crdt;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Arbiter.Server.Auth;

/// <summary>
/// Authentication and the checks that depend on the method alone. For each call it finds the
/// identity — the <c>token</c> metadata etcd clients send (or <c>authorization</c>, the gateway's),
/// else the TLS client certificate's common name (<see cref="CertificateUser"/>) — and sets it as
/// <see cref="CallIdentity.Current"/> for the call: the node stamps it into the commands it proposes
/// (the core checks them at apply, as etcd's auth applier does) and checks reads with it.
/// Methods etcd 3.4 serves without looking at the token (lease keep-alive and time-to-live, the
/// Cluster service, Status, MoveLeader, Authenticate) do the same here; Maintenance's Defragment,
/// Snapshot, Hash and HashKV are root only; arbiter.v1 Crdt by key (Get/Watch READ, Update WRITE).
/// </summary>
public sealed class AuthInterceptor(ArbiterNode node, Authenticator authenticator) : Interceptor
{
    /// <summary>Methods that never read credentials (as etcd 3.4), and members' internal calls.</summary>
    private static readonly HashSet<string> Unauthenticated = new(StringComparer.Ordinal)
    {
        "/etcdserverpb.Auth/Authenticate",
        "/etcdserverpb.Lease/LeaseKeepAlive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
        "/etcdserverpb.Lease/LeaseLeases",
        "/etcdserverpb.Cluster/MemberAdd",
        "/etcdserverpb.Cluster/MemberRemove",
        "/etcdserverpb.Cluster/MemberUpdate",
        "/etcdserverpb.Cluster/MemberList",
        "/etcdserverpb.Cluster/MemberPromote",
        "/etcdserverpb.Maintenance/Status",
        "/etcdserverpb.Maintenance/MoveLeader",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    };

    private const string WatchMethod = "/etcdserverpb.Watch/Watch";

    /// <summary>etcd 3.4's authMaintenanceServer: these need the root role.</summary>
    private static readonly HashSet<string> AdminOnly = new(StringComparer.Ordinal)
    {
        "/etcdserverpb.Maintenance/Defragment",
        "/etcdserverpb.Maintenance/Snapshot",
        "/etcdserverpb.Maintenance/Hash",
        "/etcdserverpb.Maintenance/HashKV",
    };

    /// <summary>
    /// The user a TLS client certificate names: its subject's common name (etcd's AuthInfoFromTLS).
    /// The one place the TLS layer plugs in: it applies only when
    /// <see cref="AuthOptions.ClientCertificateNamesUser"/> is set, i.e. when client certificates are verified.
    /// </summary>
    public static string? CertificateUser(ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        // Only a certificate issued by --trusted-ca-file names a user: a member's peer certificate
        // (also seen on the client port) does not.
        var name = context.GetHttpContext() is { } http ? Security.ClientCertificateIdentity.VerifiedClientCommonName(http) : null;
        return string.IsNullOrEmpty(name) ? null : name;
    }

    /// <inheritdoc />
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        try
        {
            CallIdentity.Current = await AuthenticateCallAsync(context).ConfigureAwait(false);
            CheckMethod(context, request);
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (EtcdException e) when (AsEtcdReports(context.Method, e.Error) is { } reported)
        {
            throw new EtcdException(reported);
        }
    }

    /// <inheritdoc />
    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        try
        {
            CallIdentity.Current = await AuthenticateCallAsync(context).ConfigureAwait(false);
            CheckMethod(context, request);
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (EtcdException e) when (AsEtcdReports(context.Method, e.Error) is { } reported)
        {
            throw new EtcdException(reported);
        }
    }

    /// <inheritdoc />
    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        CallIdentity.Current = await AuthenticateCallAsync(context).ConfigureAwait(false);
        CheckMethod<object?>(context, null);
        await continuation(requestStream, responseStream, context).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        CallIdentity.Current = await AuthenticateCallAsync(context).ConfigureAwait(false);
        CheckMethod<object?>(context, null);
        return await continuation(requestStream, context).ConfigureAwait(false);
    }

    /// <summary>
    /// The identity of the call (null: no credentials, or a method that takes none). Returned, not
    /// set here: an async-local set inside an awaited method does not flow back to its caller.
    /// </summary>
    private async ValueTask<AuthIdentity?> AuthenticateCallAsync(ServerCallContext context)
    {
        var method = context.Method;
        if (Unauthenticated.Contains(method) || method.StartsWith("/arbiter.internal.", StringComparison.Ordinal))
        {
            return null;
        }

        var token = context.RequestHeaders.GetValue("token") ?? context.RequestHeaders.GetValue("authorization");
        if (token is not null)
        {
            try
            {
                return await authenticator.ResolveAsync(token, context.CancellationToken).ConfigureAwait(false);
            }
            catch (EtcdException e) when (method == WatchMethod && e.Error == AuthErrors.InvalidAuthToken)
            {
                return AuthIdentity.InvalidToken;
            }
        }

        if (authenticator.Options.ClientCertificateNamesUser && CertificateUser(context) is { } user)
        {
            return new AuthIdentity(user, node.AuthRevision);
        }

        return null;
    }

    /// <summary>The checks that depend on the method alone (with <see cref="CallIdentity.Current"/> set).</summary>
    private void CheckMethod<TRequest>(ServerCallContext context, TRequest request)
    {
        if (AdminOnly.Contains(context.Method))
        {
            node.CheckAdmin();
            return;
        }

        CheckArbiterRequest(request, CallIdentity.Current);
    }

    /// <summary>
    /// etcd 3.4 reports auth errors differently on some services: Maintenance returns the auth
    /// store's own error (code Unknown, text "auth: …"); v3lock and v3election return the error of
    /// the client they run through (code Unknown, etcd's text). Null: report it as it is.
    /// </summary>
    private static EtcdError? AsEtcdReports(string method, EtcdError error)
    {
        if (method.StartsWith("/etcdserverpb.Maintenance/", StringComparison.Ordinal))
        {
            var raw = error == AuthErrors.UserEmpty ? "auth: user name is empty"
                : error == AuthErrors.PermissionDenied ? "auth: permission denied"
                : error == AuthErrors.InvalidAuthToken ? "auth: invalid auth token"
                : error == AuthErrors.UserNotFound ? "auth: user not found"
                : null;
            return raw is null ? null : new EtcdError(ErrorStatusCode.Unknown, raw);
        }

        if (method.StartsWith("/v3lockpb.Lock/", StringComparison.Ordinal) || method.StartsWith("/v3electionpb.Election/", StringComparison.Ordinal))
        {
            var isAuthError = error == AuthErrors.UserEmpty || error == AuthErrors.PermissionDenied || error == AuthErrors.InvalidAuthToken
                || error == AuthErrors.AuthOldRevision || error == AuthErrors.UserNotFound;
            return isAuthError ? error with { StatusCode = ErrorStatusCode.Unknown } : null;
        }

        return null;
    }

    /// <summary>arbiter.v1 requests checked here (the others are commands the core checks, or node reads).</summary>
    private void CheckArbiterRequest<TRequest>(TRequest request, AuthIdentity? identity)
    {
        EtcdError? error = request switch
        {
            CrdtUpdateRequest update => CheckKey(update.Key, Arbiter.Protocol.Auth.Permission.Types.Type.Write, identity),
            CrdtGetRequest get => CheckKey(get.Key, Arbiter.Protocol.Auth.Permission.Types.Type.Read, identity),
            CrdtWatchRequest watch => CheckKey(watch.Key, Arbiter.Protocol.Auth.Permission.Types.Type.Read, identity),
            Arbiter.Protocol.Transactions.TransactionStatusRequest => node.ReadAuth(s => !s.Enabled ? null : identity is null ? AuthErrors.UserEmpty : s.FindUser(identity.User) is null ? AuthErrors.PermissionDenied : null),
            _ => null,
        };
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }

    private EtcdError? CheckKey(string key, Arbiter.Protocol.Auth.Permission.Types.Type type, AuthIdentity? identity) =>
        node.ReadAuth(s => s.CheckKeys(identity?.User, identity?.Revision ?? 0, Google.Protobuf.ByteString.CopyFromUtf8(key), Google.Protobuf.ByteString.Empty, type));
}
