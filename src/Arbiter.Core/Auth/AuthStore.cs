using System.Text;
using Arbiter.Protocol.Auth;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Core.Auth;

/// <summary>
/// etcd's auth store as replicated state: users (bcrypt hashes, roles), roles (key permissions),
/// the enabled flag, the auth revision, and the simple tokens assigned through the log.
/// Deterministic like the rest of the core: no clock, no hashing of passwords (hashes arrive in the
/// commands), ordinal name order everywhere. Not thread-safe (the state machine's host serializes).
/// </summary>
/// <remarks>
/// The auth revision moves exactly where etcd's moves: every user and role change that changes
/// something, and AuthDisable; not AuthEnable, not Authenticate, not a no-op grant.
/// </remarks>
public sealed class AuthStore
{
    /// <summary>The user that may enable auth and administer it (etcd's rule).</summary>
    public const string RootUser = "root";

    /// <summary>The role that makes a user an administrator, with every permission.</summary>
    public const string RootRole = "root";

    private static readonly byte[] BcryptPrefix = "$2"u8.ToArray();

    private readonly CoreLimits _limits;
    private readonly SortedDictionary<string, User> _users = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, Role> _roles = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _tokens = new(StringComparer.Ordinal);
    private readonly LinkedList<string> _tokenOrder = new();
    private readonly Dictionary<string, LinkedListNode<string>> _tokenNodes = new(StringComparer.Ordinal);
    private Dictionary<string, UserPermissions> _permissions = new(StringComparer.Ordinal);

    /// <summary>Creates an empty store (auth off, revision 0, as etcd's fresh backend).</summary>
    public AuthStore(CoreLimits limits)
    {
        _limits = limits ?? throw new ArgumentNullException(nameof(limits));
    }

    /// <summary>Whether authentication is enabled.</summary>
    public bool Enabled { get; private set; }

    /// <summary>The auth revision: bumped by every auth change, as etcd's.</summary>
    public ulong Revision { get; private set; }

    /// <summary>Number of simple tokens known.</summary>
    public int TokenCount => _tokens.Count;

    /// <summary>Whether the store holds nothing (no users, roles, tokens; off; revision 0): old snapshots' state.</summary>
    public bool IsEmpty => !Enabled && Revision == 0 && _users.Count == 0 && _roles.Count == 0 && _tokens.Count == 0;

    /// <summary>The user's stored record, or null.</summary>
    public User? FindUser(string name) => _users.GetValueOrDefault(name);

    /// <summary>The user a simple token was assigned to, or null (unknown, or forgotten).</summary>
    public string? TokenUser(string token) => _tokens.GetValueOrDefault(token);

    /// <summary>Whether the token is known (for the members' TTL keepers).</summary>
    public IEnumerable<string> Tokens => _tokenOrder;

    // ---- checks (etcd's IsAdminPermitted / isOpPermitted) ----

    /// <summary>etcd's IsAdminPermitted: null when allowed.</summary>
    public EtcdError? CheckAdmin(string? user)
    {
        if (!Enabled)
        {
            return null;
        }

        if (string.IsNullOrEmpty(user))
        {
            return AuthErrors.UserEmpty;
        }

        if (!_users.TryGetValue(user, out var u))
        {
            return AuthErrors.UserNotFound;
        }

        return HasRootRole(u) ? null : AuthErrors.PermissionDenied;
    }

    /// <summary>
    /// etcd's isOpPermitted: may <paramref name="user"/> (token checked at <paramref name="authRevision"/>)
    /// read or write [key, rangeEnd)? Empty rangeEnd: the one key; "\0": every key from key on.
    /// </summary>
    public EtcdError? CheckKeys(string? user, ulong authRevision, ByteString key, ByteString rangeEnd, Permission.Types.Type type)
    {
        if (!Enabled)
        {
            return null;
        }

        if (authRevision == 0 || string.IsNullOrEmpty(user))
        {
            return AuthErrors.UserEmpty;
        }

        if (authRevision < Revision)
        {
            return AuthErrors.AuthOldRevision;
        }

        if (!_users.TryGetValue(user, out var u))
        {
            return AuthErrors.PermissionDenied;
        }

        if (HasRootRole(u))
        {
            return null;
        }

        return _permissions.TryGetValue(user, out var perms) && perms.Allows(key.Span, rangeEnd.Span, type)
            ? null
            : AuthErrors.PermissionDenied;
    }

    /// <summary>Whether <paramref name="user"/> exists and holds <paramref name="role"/> (etcd's HasRole).</summary>
    public bool HasRole(string? user, string role) =>
        user is not null && _users.TryGetValue(user, out var u) && u.Roles.Contains(role);

    // ---- reads (etcd's UserGet/UserList/RoleGet/RoleList) ----

    /// <summary>UserGet: the user's roles (sorted).</summary>
    /// <exception cref="EtcdException">No such user.</exception>
    public AuthUserGetResponse UserGet(string name)
    {
        var user = _users.GetValueOrDefault(name) ?? throw new EtcdException(AuthErrors.UserNotFound);
        var response = new AuthUserGetResponse();
        response.Roles.AddRange(user.Roles);
        return response;
    }

    /// <summary>UserList: every user name in byte order.</summary>
    public AuthUserListResponse UserList()
    {
        var response = new AuthUserListResponse();
        response.Users.AddRange(_users.Keys);
        return response;
    }

    /// <summary>RoleGet: the role's permissions in key order.</summary>
    /// <exception cref="EtcdException">No such role.</exception>
    public AuthRoleGetResponse RoleGet(string name)
    {
        var role = _roles.GetValueOrDefault(name) ?? throw new EtcdException(AuthErrors.RoleNotFound);
        var response = new AuthRoleGetResponse();
        response.Perm.AddRange(role.KeyPermission.Select(p => p.Clone()));
        return response;
    }

    /// <summary>RoleList: every role name in byte order.</summary>
    public AuthRoleListResponse RoleList()
    {
        var response = new AuthRoleListResponse();
        response.Roles.AddRange(_roles.Keys);
        return response;
    }

    // ---- apply ----

    /// <summary>
    /// Applies one auth command for <paramref name="actor"/> (the proposer's authenticated user).
    /// Throws <see cref="EtcdException"/> before any change when refused; applies all of it otherwise.
    /// </summary>
    /// <param name="command">The change.</param>
    /// <param name="actor">The user who asked ("" for none).</param>
    /// <param name="index">The log index (simple tokens end in it, as etcd's).</param>
    public AuthResult Apply(AuthCommand command, string actor, long index)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (command.OpCase != AuthCommand.OpOneofCase.TokenAssign && command.OpCase != AuthCommand.OpOneofCase.None)
        {
            // etcd's needAdminPermission: every auth change is root's.
            Throw(CheckAdmin(actor));
        }

        var token = string.Empty;
        switch (command.OpCase)
        {
            case AuthCommand.OpOneofCase.Enable:
                Enable();
                break;
            case AuthCommand.OpOneofCase.Disable:
                Disable();
                break;
            case AuthCommand.OpOneofCase.UserAdd:
                UserAdd(command.UserAdd);
                break;
            case AuthCommand.OpOneofCase.UserDelete:
                UserDelete(command.UserDelete.Name);
                break;
            case AuthCommand.OpOneofCase.UserChangePassword:
                UserChangePassword(command.UserChangePassword);
                break;
            case AuthCommand.OpOneofCase.UserGrantRole:
                UserGrantRole(command.UserGrantRole.User, command.UserGrantRole.Role);
                break;
            case AuthCommand.OpOneofCase.UserRevokeRole:
                UserRevokeRole(command.UserRevokeRole.Name, command.UserRevokeRole.Role);
                break;
            case AuthCommand.OpOneofCase.RoleAdd:
                RoleAdd(command.RoleAdd.Name);
                break;
            case AuthCommand.OpOneofCase.RoleDelete:
                RoleDelete(command.RoleDelete.Role);
                break;
            case AuthCommand.OpOneofCase.RoleGrantPermission:
                RoleGrantPermission(command.RoleGrantPermission);
                break;
            case AuthCommand.OpOneofCase.RoleRevokePermission:
                RoleRevokePermission(command.RoleRevokePermission);
                break;
            case AuthCommand.OpOneofCase.TokenAssign:
                token = AssignToken(command.TokenAssign, index);
                break;
            default:
                throw new EtcdException(CoreErrors.EmptyCommand);
        }

        return new AuthResult { AuthRevision = Revision, Token = token };
    }

    private static void Throw(EtcdError? error)
    {
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }

    private static bool HasRootRole(User user) => user.Roles.Contains(RootRole);

    private void Enable()
    {
        if (Enabled)
        {
            return;
        }

        if (!_users.TryGetValue(RootUser, out var root))
        {
            throw new EtcdException(AuthErrors.RootUserNotExist);
        }

        if (!HasRootRole(root))
        {
            throw new EtcdException(AuthErrors.RootRoleNotExist);
        }

        // etcd does not move the revision on enable.
        Enabled = true;
    }

    private void Disable()
    {
        if (!Enabled)
        {
            return;
        }

        Enabled = false;
        ClearTokens();
        Revision++;
    }

    private void CheckName(string name, EtcdError empty, string what)
    {
        if (name.Length == 0)
        {
            throw new EtcdException(empty);
        }

        if (Encoding.UTF8.GetByteCount(name) > _limits.AuthNameBytesMax)
        {
            throw new EtcdException(AuthErrors.NameTooLong(what, _limits.AuthNameBytesMax));
        }
    }

    private void UserAdd(AuthUserAdd add)
    {
        CheckName(add.Name, AuthErrors.UserEmpty, "user");
        if (_users.ContainsKey(add.Name))
        {
            throw new EtcdException(AuthErrors.UserAlreadyExist);
        }

        if (!add.NoPassword && !IsBcryptHash(add.PasswordHash))
        {
            throw new EtcdException(AuthErrors.InvalidPasswordHash);
        }

        if (_users.Count >= _limits.AuthUsersMax)
        {
            throw new EtcdException(AuthErrors.TooMany("users", _limits.AuthUsersMax));
        }

        _users.Add(add.Name, new User
        {
            Name = ByteString.CopyFromUtf8(add.Name),
            Password = add.NoPassword ? ByteString.Empty : add.PasswordHash,
            Options = new UserAddOptions { NoPassword = add.NoPassword },
        });
        Changed();
    }

    private static bool IsBcryptHash(ByteString hash) => hash.Length is >= 59 and <= 64 && hash.Span.StartsWith(BcryptPrefix);

    private void UserDelete(string name)
    {
        if (Enabled && name == RootUser)
        {
            throw new EtcdException(AuthErrors.InvalidAuthMgmt);
        }

        if (!_users.Remove(name))
        {
            throw new EtcdException(AuthErrors.UserNotFound);
        }

        InvalidateTokensOf(name);
        Changed();
    }

    private void UserChangePassword(AuthUserChangePassword change)
    {
        if (!_users.TryGetValue(change.Name, out var user))
        {
            throw new EtcdException(AuthErrors.UserNotFound);
        }

        if (!IsBcryptHash(change.PasswordHash))
        {
            throw new EtcdException(AuthErrors.InvalidPasswordHash);
        }

        user.Password = change.PasswordHash;
        InvalidateTokensOf(change.Name);
        Changed();
    }

    private void UserGrantRole(string name, string role)
    {
        if (!_users.TryGetValue(name, out var user))
        {
            throw new EtcdException(AuthErrors.UserNotFound);
        }

        if (role != RootRole && !_roles.ContainsKey(role))
        {
            throw new EtcdException(AuthErrors.RoleNotFound);
        }

        if (user.Roles.Contains(role))
        {
            // etcd ignores a repeated grant (no revision change).
            return;
        }

        if (user.Roles.Count >= _limits.AuthRolesPerUserMax)
        {
            throw new EtcdException(AuthErrors.TooMany("roles for one user", _limits.AuthRolesPerUserMax));
        }

        var roles = user.Roles.Append(role).Order(StringComparer.Ordinal).ToArray();
        user.Roles.Clear();
        user.Roles.AddRange(roles);
        Changed();
    }

    private void UserRevokeRole(string name, string role)
    {
        if (Enabled && name == RootUser && role == RootRole)
        {
            throw new EtcdException(AuthErrors.InvalidAuthMgmt);
        }

        if (!_users.TryGetValue(name, out var user))
        {
            throw new EtcdException(AuthErrors.UserNotFound);
        }

        if (!user.Roles.Remove(role))
        {
            throw new EtcdException(AuthErrors.RoleNotGranted);
        }

        Changed();
    }

    private void RoleAdd(string name)
    {
        CheckName(name, AuthErrors.RoleEmpty, "role");
        if (_roles.ContainsKey(name))
        {
            throw new EtcdException(AuthErrors.RoleAlreadyExist);
        }

        if (_roles.Count >= _limits.AuthRolesMax)
        {
            throw new EtcdException(AuthErrors.TooMany("roles", _limits.AuthRolesMax));
        }

        _roles.Add(name, new Role { Name = ByteString.CopyFromUtf8(name) });
        Changed();
    }

    private void RoleDelete(string name)
    {
        if (Enabled && name == RootRole)
        {
            throw new EtcdException(AuthErrors.InvalidAuthMgmt);
        }

        if (!_roles.Remove(name))
        {
            throw new EtcdException(AuthErrors.RoleNotFound);
        }

        foreach (var user in _users.Values)
        {
            user.Roles.Remove(name);
        }

        Changed();
    }

    private void RoleGrantPermission(AuthRoleGrantPermissionRequest grant)
    {
        if (!_roles.TryGetValue(grant.Name, out var role))
        {
            throw new EtcdException(AuthErrors.RoleNotFound);
        }

        var perm = grant.Perm ?? new Permission();
        if (!Enum.IsDefined(perm.PermType))
        {
            throw new EtcdException(AuthErrors.InvalidPermissionType);
        }

        if (perm.Key.Length > _limits.KeySizeBytesMax || perm.RangeEnd.Length > _limits.KeySizeBytesMax)
        {
            throw new EtcdException(AuthErrors.PermissionKeyTooLarge);
        }

        var existing = role.KeyPermission.FirstOrDefault(p => p.Key.Equals(perm.Key) && p.RangeEnd.Equals(perm.RangeEnd));
        if (existing is not null)
        {
            existing.PermType = perm.PermType;
        }
        else
        {
            if (role.KeyPermission.Count >= _limits.AuthPermissionsPerRoleMax)
            {
                throw new EtcdException(AuthErrors.TooMany("permissions for one role", _limits.AuthPermissionsPerRoleMax));
            }

            var added = new Permission { PermType = perm.PermType, Key = perm.Key, RangeEnd = perm.RangeEnd };

            // etcd keeps permissions sorted by key (a stable sort: equal keys keep their order).
            var sorted = role.KeyPermission.Append(added).OrderBy(p => p.Key, ByteStringComparer.Instance).ToArray();
            role.KeyPermission.Clear();
            role.KeyPermission.AddRange(sorted);
        }

        Changed();
    }

    private void RoleRevokePermission(AuthRoleRevokePermissionRequest revoke)
    {
        if (!_roles.TryGetValue(revoke.Role, out var role))
        {
            throw new EtcdException(AuthErrors.RoleNotFound);
        }

        var kept = role.KeyPermission.Where(p => !p.Key.Equals(revoke.Key) || !p.RangeEnd.Equals(revoke.RangeEnd)).ToArray();
        if (kept.Length == role.KeyPermission.Count)
        {
            throw new EtcdException(AuthErrors.PermissionNotGranted);
        }

        role.KeyPermission.Clear();
        role.KeyPermission.AddRange(kept);
        Changed();
    }

    private string AssignToken(AuthTokenAssign assign, long index)
    {
        if (!Enabled)
        {
            throw new EtcdException(AuthErrors.AuthNotEnabled);
        }

        if (!_users.ContainsKey(assign.Name) || assign.Token.Length == 0 || assign.Token.Length > 64)
        {
            throw new EtcdException(AuthErrors.AuthFailed);
        }

        // etcd's simple token: the proposer's random prefix, "." and the log index.
        var token = assign.Token + "." + index.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (_tokens.ContainsKey(token))
        {
            throw new EtcdException(AuthErrors.AuthFailed);
        }

        while (_tokens.Count >= Math.Max(1, _limits.AuthTokensMax))
        {
            RemoveToken(_tokenOrder.First!.Value);
        }

        _tokens.Add(token, assign.Name);
        _tokenNodes.Add(token, _tokenOrder.AddLast(token));
        return token;
    }

    private void RemoveToken(string token)
    {
        _tokens.Remove(token);
        if (_tokenNodes.Remove(token, out var node))
        {
            _tokenOrder.Remove(node);
        }
    }

    private void InvalidateTokensOf(string name)
    {
        foreach (var token in _tokens.Where(t => t.Value == name).Select(t => t.Key).ToArray())
        {
            RemoveToken(token);
        }
    }

    private void ClearTokens()
    {
        _tokens.Clear();
        _tokenNodes.Clear();
        _tokenOrder.Clear();
    }

    private void Changed()
    {
        Revision++;
        RebuildPermissions();
    }

    private void RebuildPermissions()
    {
        var permissions = new Dictionary<string, UserPermissions>(StringComparer.Ordinal);
        foreach (var (name, user) in _users)
        {
            var perms = new UserPermissions();
            foreach (var roleName in user.Roles)
            {
                if (_roles.TryGetValue(roleName, out var role))
                {
                    foreach (var perm in role.KeyPermission)
                    {
                        perms.Add(perm);
                    }
                }
            }

            permissions.Add(name, perms);
        }

        _permissions = permissions;
    }

    // ---- snapshots and hashing ----

    /// <summary>A copy of the whole store for a snapshot.</summary>
    public AuthStoreImage Capture()
    {
        var image = new AuthStoreImage { Enabled = Enabled, Revision = Revision };
        image.Users.AddRange(_users.Values.Select(u => u.Clone()));
        image.Roles.AddRange(_roles.Values.Select(r => r.Clone()));
        image.Tokens.AddRange(_tokenOrder.Select(t => new AuthTokenImage { Token = t, Name = _tokens[t] }));
        return image;
    }

    /// <summary>Restores the store from <paramref name="image"/> (replacing everything).</summary>
    /// <exception cref="InvalidDataException">The image is inconsistent.</exception>
    public void Restore(AuthStoreImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        _users.Clear();
        _roles.Clear();
        ClearTokens();
        Enabled = image.Enabled;
        Revision = image.Revision;
        foreach (var user in image.Users)
        {
            if (!_users.TryAdd(user.Name.ToStringUtf8(), user.Clone()))
            {
                throw new InvalidDataException("The snapshot's auth store holds a user twice.");
            }
        }

        foreach (var role in image.Roles)
        {
            if (!_roles.TryAdd(role.Name.ToStringUtf8(), role.Clone()))
            {
                throw new InvalidDataException("The snapshot's auth store holds a role twice.");
            }
        }

        foreach (var token in image.Tokens)
        {
            if (!_users.ContainsKey(token.Name) || _tokens.ContainsKey(token.Token))
            {
                throw new InvalidDataException("The snapshot's auth store holds a token of no user, or a token twice.");
            }

            _tokens.Add(token.Token, token.Name);
            _tokenNodes.Add(token.Token, _tokenOrder.AddLast(token.Token));
        }

        RebuildPermissions();
    }

    /// <summary>Checks the store's internal links (tokens, permission cache); throws on the first broken one.</summary>
    internal void Verify()
    {
        if (_tokens.Count != _tokenOrder.Count || _tokens.Count != _tokenNodes.Count)
        {
            throw new InvalidOperationException("State machine invariant broken: auth token indexes differ.");
        }

        if (_tokens.Values.Any(name => !_users.ContainsKey(name)))
        {
            throw new InvalidOperationException("State machine invariant broken: a token of a deleted user.");
        }

        if (Enabled && CheckAdmin(RootUser) is not null)
        {
            throw new InvalidOperationException("State machine invariant broken: auth enabled without root holding the root role.");
        }
    }

    /// <summary>The merged permissions of one user, as etcd's range permission cache.</summary>
    private sealed class UserPermissions
    {
        private readonly List<(byte[] Begin, byte[]? End)> _read = [];
        private readonly List<(byte[] Begin, byte[]? End)> _write = [];

        public void Add(Permission perm)
        {
            var begin = perm.Key.ToByteArray();

            // "\0" as range end: every key from key on (no end); empty: the one key.
            byte[]? end = perm.RangeEnd.Length == 0
                ? [.. begin, 0]
                : perm.RangeEnd is { Length: 1 } re && re[0] == 0 ? null : perm.RangeEnd.ToByteArray();
            if (perm.PermType is Permission.Types.Type.Read or Permission.Types.Type.Readwrite)
            {
                _read.Add((begin, end));
            }

            if (perm.PermType is Permission.Types.Type.Write or Permission.Types.Type.Readwrite)
            {
                _write.Add((begin, end));
            }
        }

        public bool Allows(ReadOnlySpan<byte> key, ReadOnlySpan<byte> rangeEnd, Permission.Types.Type type)
        {
            var intervals = type == Permission.Types.Type.Read ? _read : _write;
            if (rangeEnd.Length == 0)
            {
                foreach (var (begin, end) in intervals)
                {
                    if (key.SequenceCompareTo(begin) >= 0 && (end is null || key.SequenceCompareTo(end) < 0))
                    {
                        return true;
                    }
                }

                return false;
            }

            // [key, rangeEnd) (rangeEnd "\0": no end) must be covered by the union of the intervals
            // that meet it, without a gap (etcd's IntervalTree.Contains).
            var requestEnd = rangeEnd is [0] ? null : rangeEnd.ToArray();
            var touching = new List<(byte[] Begin, byte[]? End)>();
            foreach (var ivl in intervals)
            {
                var beginsBeforeEnd = requestEnd is null || ivl.Begin.AsSpan().SequenceCompareTo(requestEnd) < 0;
                var endsAfterBegin = ivl.End is null || key.SequenceCompareTo(ivl.End) < 0;
                if (beginsBeforeEnd && endsAfterBegin)
                {
                    touching.Add(ivl);
                }
            }

            if (touching.Count == 0)
            {
                return false;
            }

            touching.Sort((a, b) => a.Begin.AsSpan().SequenceCompareTo(b.Begin));
            if (touching[0].Begin.AsSpan().SequenceCompareTo(key) > 0)
            {
                return false;
            }

            var maxEnd = touching[0].End;
            for (var i = 1; i < touching.Count && maxEnd is not null; i++)
            {
                if (maxEnd.AsSpan().SequenceCompareTo(touching[i].Begin) < 0)
                {
                    return false;
                }

                if (touching[i].End is null || touching[i].End.AsSpan().SequenceCompareTo(maxEnd) > 0)
                {
                    maxEnd = touching[i].End;
                }
            }

            return maxEnd is null || (requestEnd is not null && maxEnd.AsSpan().SequenceCompareTo(requestEnd) >= 0);
        }
    }

    private sealed class ByteStringComparer : IComparer<ByteString>
    {
        public static readonly ByteStringComparer Instance = new();

        public int Compare(ByteString? x, ByteString? y) => (x ?? ByteString.Empty).Span.SequenceCompareTo((y ?? ByteString.Empty).Span);
    }
}
