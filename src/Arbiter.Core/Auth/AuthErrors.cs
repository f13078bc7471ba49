namespace Arbiter.Core.Auth;

/// <summary>The auth errors, with etcd 3.4's codes and texts (etcdserver/api/v3rpc/rpctypes/error.go).</summary>
public static class AuthErrors
{
    /// <summary>AuthEnable without a root user.</summary>
    public static readonly EtcdError RootUserNotExist = new(ErrorStatusCode.FailedPrecondition, "etcdserver: root user does not exist");

    /// <summary>AuthEnable while the root user lacks the root role.</summary>
    public static readonly EtcdError RootRoleNotExist = new(ErrorStatusCode.FailedPrecondition, "etcdserver: root user does not have root role");

    /// <summary>UserAdd of an existing name.</summary>
    public static readonly EtcdError UserAlreadyExist = new(ErrorStatusCode.FailedPrecondition, "etcdserver: user name already exists");

    /// <summary>An empty user name, or (auth on) a request without a user.</summary>
    public static readonly EtcdError UserEmpty = new(ErrorStatusCode.InvalidArgument, "etcdserver: user name is empty");

    /// <summary>No such user.</summary>
    public static readonly EtcdError UserNotFound = new(ErrorStatusCode.FailedPrecondition, "etcdserver: user name not found");

    /// <summary>RoleAdd of an existing name.</summary>
    public static readonly EtcdError RoleAlreadyExist = new(ErrorStatusCode.FailedPrecondition, "etcdserver: role name already exists");

    /// <summary>No such role.</summary>
    public static readonly EtcdError RoleNotFound = new(ErrorStatusCode.FailedPrecondition, "etcdserver: role name not found");

    /// <summary>An empty role name.</summary>
    public static readonly EtcdError RoleEmpty = new(ErrorStatusCode.InvalidArgument, "etcdserver: role name is empty");

    /// <summary>Wrong password, unknown user, or a user without a password.</summary>
    public static readonly EtcdError AuthFailed = new(ErrorStatusCode.InvalidArgument, "etcdserver: authentication failed, invalid user ID or password");

    /// <summary>The user's roles do not cover the request.</summary>
    public static readonly EtcdError PermissionDenied = new(ErrorStatusCode.PermissionDenied, "etcdserver: permission denied");

    /// <summary>UserRevokeRole of a role the user lacks.</summary>
    public static readonly EtcdError RoleNotGranted = new(ErrorStatusCode.FailedPrecondition, "etcdserver: role is not granted to the user");

    /// <summary>RoleRevokePermission of a permission the role lacks.</summary>
    public static readonly EtcdError PermissionNotGranted = new(ErrorStatusCode.FailedPrecondition, "etcdserver: permission is not granted to the role");

    /// <summary>Authenticate while auth is off.</summary>
    public static readonly EtcdError AuthNotEnabled = new(ErrorStatusCode.FailedPrecondition, "etcdserver: authentication is not enabled");

    /// <summary>A token that is unknown, expired, forged or malformed.</summary>
    public static readonly EtcdError InvalidAuthToken = new(ErrorStatusCode.Unauthenticated, "etcdserver: invalid auth token");

    /// <summary>A change the root rules forbid while auth is on (delete root, revoke root from root, delete the root role).</summary>
    public static readonly EtcdError InvalidAuthMgmt = new(ErrorStatusCode.InvalidArgument, "etcdserver: invalid auth management");

    /// <summary>The auth store changed after the token was checked: re-authenticate and retry.</summary>
    public static readonly EtcdError AuthOldRevision = new(ErrorStatusCode.InvalidArgument, "etcdserver: revision of auth store is old");

    /// <summary>A user or role name longer than <see cref="CoreLimits.AuthNameBytesMax"/>.</summary>
    public static EtcdError NameTooLong(string what, int limitBytes) =>
        new(ErrorStatusCode.InvalidArgument, $"arbiter: {what} name is longer than {limitBytes} bytes");

    /// <summary>A count limit reached (users, roles, permissions of a role, roles of a user).</summary>
    public static EtcdError TooMany(string what, int limit) =>
        new(ErrorStatusCode.ResourceExhausted, $"arbiter: too many {what} (limit {limit})");

    /// <summary>A permission key or range end larger than <see cref="CoreLimits.KeySizeBytesMax"/>.</summary>
    public static readonly EtcdError PermissionKeyTooLarge = new(ErrorStatusCode.InvalidArgument, "arbiter: permission key or range end is too large");

    /// <summary>A permission type outside READ/WRITE/READWRITE.</summary>
    public static readonly EtcdError InvalidPermissionType = new(ErrorStatusCode.InvalidArgument, "arbiter: invalid permission type");

    /// <summary>A password hash that is not a bcrypt hash (the proposer always sends one).</summary>
    public static readonly EtcdError InvalidPasswordHash = new(ErrorStatusCode.InvalidArgument, "arbiter: password hash is not a bcrypt hash");
}
