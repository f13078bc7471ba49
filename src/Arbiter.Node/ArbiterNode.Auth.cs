using Arbiter.Core;
using Arbiter.Core.Auth;
using Arbiter.Node.Auth;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;

namespace Arbiter.Node;

public sealed partial class ArbiterNode
{
    /// <summary>Whether authentication is enabled (this member's applied state).</summary>
    public bool AuthEnabled => _host.Read(static s => s.Auth.Enabled);

    /// <summary>The auth revision this member has applied.</summary>
    public ulong AuthRevision => _host.Read(static s => s.Auth.Revision);

    /// <summary>Reads the auth store under the state's read lock.</summary>
    public T ReadAuth<T>(Func<AuthStore, T> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        return _host.Read(s => read(s.Auth));
    }

    /// <summary>
    /// Proposes an auth change (passwords already hashed by the caller) for the current
    /// <see cref="CallIdentity"/> user; the core refuses it unless that user is root (auth on).
    /// </summary>
    public async Task<AuthResult> ProposeAuthAsync(AuthCommand command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var result = await ProposeAsync(new Command { Auth = command }, cancellationToken).ConfigureAwait(false);
        return result.Auth;
    }

    /// <summary>
    /// Waits until this member's state is linearizable (as a linearizable read), then reads the
    /// auth store: etcd serves the auth reads through its log, so they see every acknowledged change.
    /// </summary>
    public async Task<T> ReadAuthLinearizableAsync<T>(Func<AuthStore, T> read, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(read);
        await PrepareReadAsync(null, serializableFlag: false, cancellationToken).ConfigureAwait(false);
        return _host.Read(s => read(s.Auth));
    }

    /// <summary>Throws etcd's error when the current identity may not read [key, rangeEnd) (nothing when auth is off).</summary>
    public void CheckRead(Google.Protobuf.ByteString key, Google.Protobuf.ByteString rangeEnd)
    {
        var identity = CallIdentity.Current;
        var error = _host.Read(s => s.CheckRangePermission(identity?.User, identity?.Revision ?? 0, key, rangeEnd));
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }

    /// <summary>Whether the current identity may read every one of <paramref name="keys"/> (always when auth is off); one pass over the state.</summary>
    private bool MayReadAll(List<Google.Protobuf.ByteString> keys)
    {
        var identity = CallIdentity.Current;
        return _host.Read(s => !s.Auth.Enabled || keys.TrueForAll(key => s.CheckRangePermission(identity?.User, identity?.Revision ?? 0, key, Google.Protobuf.ByteString.Empty) is null));
    }

    /// <summary>Throws etcd's error when the current identity is not root (nothing when auth is off).</summary>
    public void CheckAdmin()
    {
        var identity = CallIdentity.Current;
        var error = _host.Read(s => s.Auth.CheckAdmin(identity?.User));
        if (error is not null)
        {
            throw new EtcdException(error);
        }
    }

    /// <summary>Header for auth responses.</summary>
    public ResponseHeader AuthHeader() => NewHeader(Revision);

    private static void StampIdentity(Command command)
    {
        if (CallIdentity.Current is { } identity)
        {
            command.AuthUser = identity.User;
            command.AuthRevision = identity.Revision;
        }
    }

    private static RangeResponse ReadRangeChecked(StateMachine s, RangeRequest request)
    {
        if (s.Auth.Enabled)
        {
            var identity = CallIdentity.Current;
            if (s.CheckRangePermission(identity?.User, identity?.Revision ?? 0, request.Key, request.RangeEnd) is { } error)
            {
                throw new EtcdException(error);
            }
        }

        return s.Range(request);
    }

    private static TxnResponse ReadTxnChecked(StateMachine s, TxnRequest request)
    {
        if (s.Auth.Enabled)
        {
            var identity = CallIdentity.Current;
            if (s.CheckTxnPermission(identity?.User, identity?.Revision ?? 0, request) is { } error)
            {
                throw new EtcdException(error);
            }
        }

        return s.ReadOnlyTxn(request);
    }
}
