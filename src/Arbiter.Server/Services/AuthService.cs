using Arbiter.Core;
using Arbiter.Core.Auth;
using Arbiter.Node;
using Arbiter.Node.Auth;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Arbiter.Server.Auth;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>
/// etcdserverpb.Auth. Changes are commands through the log (passwords hashed here, at the edge);
/// the core refuses them unless the caller is root (auth on), as etcd's auth applier. Reads are
/// linearizable, with etcd 3.4's rules: UserGet of oneself and RoleGet of one's own role need no root.
/// </summary>
public sealed class AuthService(ArbiterNode node, Authenticator authenticator) : Arbiter.Protocol.Etcd.Auth.AuthBase
{
    /// <inheritdoc />
    public override async Task<AuthEnableResponse> AuthEnable(AuthEnableRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { Enable = request }, context).ConfigureAwait(false);
        return new AuthEnableResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthDisableResponse> AuthDisable(AuthDisableRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { Disable = request }, context).ConfigureAwait(false);
        authenticator.Keeper.Clear();
        return new AuthDisableResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthStatusResponse> AuthStatus(AuthStatusRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var (enabled, revision) = await node.ReadAuthLinearizableAsync(s => (s.Enabled, s.Revision), context.CancellationToken).ConfigureAwait(false);
        return new AuthStatusResponse { Header = node.AuthHeader(), Enabled = enabled, AuthRevision = revision };
    }

    /// <inheritdoc />
    public override async Task<AuthenticateResponse> Authenticate(AuthenticateRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var token = await authenticator.AuthenticateAsync(request.Name, request.Password, context.CancellationToken).ConfigureAwait(false);
        return new AuthenticateResponse { Header = node.AuthHeader(), Token = token };
    }

    /// <inheritdoc />
    public override async Task<AuthUserAddResponse> UserAdd(AuthUserAddRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var noPassword = request.Options?.NoPassword ?? false;

        // Root is checked first, as etcd's applier does (an empty name from a non-root user is "permission denied").
        node.CheckAdmin();
        var add = new AuthUserAdd { Name = request.Name, NoPassword = noPassword };
        if (!noPassword)
        {
            add.PasswordHash = Google.Protobuf.ByteString.CopyFrom(authenticator.HashPassword(request.Password));
        }

        await ProposeAsync(new AuthCommand { UserAdd = add }, context).ConfigureAwait(false);
        return new AuthUserAddResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthUserGetResponse> UserGet(AuthUserGetRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var identity = CallIdentity.Current;
        var response = await node.ReadAuthLinearizableAsync(
            s =>
            {
                if (s.CheckAdmin(identity?.User) is { } error && request.Name != identity?.User)
                {
                    throw new EtcdException(error);
                }

                return s.UserGet(request.Name);
            },
            context.CancellationToken).ConfigureAwait(false);
        response.Header = node.AuthHeader();
        return response;
    }

    /// <inheritdoc />
    public override async Task<AuthUserListResponse> UserList(AuthUserListRequest request, ServerCallContext context)
    {
        var response = await ReadAsAdminAsync(s => s.UserList(), context).ConfigureAwait(false);
        response.Header = node.AuthHeader();
        return response;
    }

    /// <inheritdoc />
    public override async Task<AuthUserDeleteResponse> UserDelete(AuthUserDeleteRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { UserDelete = request }, context).ConfigureAwait(false);
        return new AuthUserDeleteResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthUserChangePasswordResponse> UserChangePassword(AuthUserChangePasswordRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);

        // etcd 3.4 hashes before anything else (and then needs root at apply).
        var change = new AuthUserChangePassword { Name = request.Name, PasswordHash = Google.Protobuf.ByteString.CopyFrom(authenticator.HashPassword(request.Password)) };
        await ProposeAsync(new AuthCommand { UserChangePassword = change }, context).ConfigureAwait(false);
        return new AuthUserChangePasswordResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthUserGrantRoleResponse> UserGrantRole(AuthUserGrantRoleRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { UserGrantRole = request }, context).ConfigureAwait(false);
        return new AuthUserGrantRoleResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthUserRevokeRoleResponse> UserRevokeRole(AuthUserRevokeRoleRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { UserRevokeRole = request }, context).ConfigureAwait(false);
        return new AuthUserRevokeRoleResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthRoleAddResponse> RoleAdd(AuthRoleAddRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { RoleAdd = request }, context).ConfigureAwait(false);
        return new AuthRoleAddResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthRoleGetResponse> RoleGet(AuthRoleGetRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var identity = CallIdentity.Current;
        var response = await node.ReadAuthLinearizableAsync(
            s =>
            {
                if (s.CheckAdmin(identity?.User) is { } error && !s.HasRole(identity?.User, request.Role))
                {
                    throw new EtcdException(error);
                }

                return s.RoleGet(request.Role);
            },
            context.CancellationToken).ConfigureAwait(false);
        response.Header = node.AuthHeader();
        return response;
    }

    /// <inheritdoc />
    public override async Task<AuthRoleListResponse> RoleList(AuthRoleListRequest request, ServerCallContext context)
    {
        var response = await ReadAsAdminAsync(s => s.RoleList(), context).ConfigureAwait(false);
        response.Header = node.AuthHeader();
        return response;
    }

    /// <inheritdoc />
    public override async Task<AuthRoleDeleteResponse> RoleDelete(AuthRoleDeleteRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { RoleDelete = request }, context).ConfigureAwait(false);
        return new AuthRoleDeleteResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthRoleGrantPermissionResponse> RoleGrantPermission(AuthRoleGrantPermissionRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { RoleGrantPermission = request }, context).ConfigureAwait(false);
        return new AuthRoleGrantPermissionResponse { Header = node.AuthHeader() };
    }

    /// <inheritdoc />
    public override async Task<AuthRoleRevokePermissionResponse> RoleRevokePermission(AuthRoleRevokePermissionRequest request, ServerCallContext context)
    {
        await ProposeAsync(new AuthCommand { RoleRevokePermission = request }, context).ConfigureAwait(false);
        return new AuthRoleRevokePermissionResponse { Header = node.AuthHeader() };
    }

    private Task<AuthResult> ProposeAsync(AuthCommand command, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return node.ProposeAuthAsync(command, context.CancellationToken);
    }

    private Task<T> ReadAsAdminAsync<T>(Func<AuthStore, T> read, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var identity = CallIdentity.Current;
        return node.ReadAuthLinearizableAsync(
            s => s.CheckAdmin(identity?.User) is { } error ? throw new EtcdException(error) : read(s),
            context.CancellationToken);
    }
}
