using System.Runtime.CompilerServices;
using Arbiter.Client;
using Arbiter.Client.Diagnostics;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Arbiter.Recipes.Diagnostics;
using Grpc.Core;

namespace Arbiter.Recipes;

/// <summary>The current leader as observers see it.</summary>
/// <param name="Key">The leader's key (<c>name/&lt;lease hex&gt;</c>).</param>
/// <param name="Value">What the leader proclaimed.</param>
/// <param name="Revision">The key's create revision: the term's fencing token.</param>
public sealed record LeaderInfo(string Key, string Value, long Revision);

/// <summary>
/// Leader election, etcd's algorithm (compatible with <c>etcdctl elect</c>): candidates queue as
/// <c>name/&lt;lease hex&gt;</c>; the lowest create revision leads; each candidate watches only its
/// predecessor. Proclaim and resign are guarded by the leader key's create revision.
/// </summary>
public sealed class LeaderElection
{
    private readonly ArbiterClient _client;
    private readonly RecipeOptions _options;

    /// <summary>An election named <paramref name="name"/>.</summary>
    public LeaderElection(ArbiterClient client, string name, RecipeOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        _options = options ?? new RecipeOptions();
    }

    /// <summary>The election name (key prefix).</summary>
    public string Name { get; }

    /// <summary>Campaigns with <paramref name="value"/> until elected, or null when <paramref name="timeout"/> passes first (the candidacy is withdrawn).</summary>
    public async Task<Leadership?> TryCampaignAsync(string value, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        Timeouts.Check(timeout);
        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.election.campaign");
        activity?.SetTag("arbiter.election.name", ArbiterTelemetry.KeyPrefixOf(Keys.From(Name + "/").Span));
        try
        {
            var leadership = await CampaignOnceAsync(value, timeout, cancellationToken).ConfigureAwait(false);
            activity?.SetTag("arbiter.election.outcome", leadership is null ? "timeout" : "elected");
            activity?.SetTag("arbiter.election.revision", leadership?.Revision);
            return leadership;
        }
        catch (Exception e)
        {
            activity?.SetTag("arbiter.election.outcome", e switch { OperationCanceledException => "cancelled", LockLostException => "lost", _ => "error" });
            if (e is not OperationCanceledException)
            {
                RecipeTelemetry.Fail(activity, e);
            }

            throw;
        }
    }

    private async Task<Leadership?> CampaignOnceAsync(string value, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var ownsSession = _options.Session == null;
        var session = _options.Session ?? await _client.CreateSessionAsync(TimeSpan.FromSeconds(_options.SessionTtlSeconds), cancellationToken).ConfigureAwait(false);
        var key = Name + "/" + Keys.LeaseHex(session.LeaseId);
        long myRevision = 0;
        var elected = false;
        try
        {
            myRevision = await WaitQueue.EnqueueAsync(_client, key, value, session.LeaseId, cancellationToken).ConfigureAwait(false);
            using var waitToken = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, session.LostToken);
            if (!await WaitQueue.WaitForPredecessorsAsync(_client, Name + "/", myRevision, timeout, waitToken.Token).ConfigureAwait(false))
            {
                return null;
            }

            var mine = await _client.GetAsync(key, cancellationToken).ConfigureAwait(false);
            if (mine == null || mine.CreateRevision != myRevision)
            {
                throw new LockLostException($"{key} disappeared while campaigning (session expired?)");
            }

            if (mine.Value.ToStringUtf8() != value)
            {
                // Re-campaign with the same session (etcd does the same): proclaim the new value.
                await _client.Txn().If(Cmp.CreateRevision(key) == myRevision).Then(Op.Put(key, value, session.LeaseId)).CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            elected = true;
            return Leadership.Start(_client, session, ownsSession, key, myRevision);
        }
        catch (OperationCanceledException) when (session.IsLost && !cancellationToken.IsCancellationRequested)
        {
            throw new LockLostException($"the session of {key} was lost while campaigning ({session.LostReason})");
        }
        finally
        {
            if (!elected)
            {
                await LockAcquirer.CleanupAsync(_client, session, ownsSession, key, myRevision).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Campaigns until elected (or <paramref name="timeout"/>, then <see cref="TimeoutException"/>).</summary>
    public async Task<Leadership> CampaignAsync(string value, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        await TryCampaignAsync(value, timeout ?? Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false)
            ?? throw new TimeoutException($"not elected in {Name} within {timeout}");

    /// <summary>The current leader, or null when there is none.</summary>
    public async Task<LeaderInfo?> GetLeaderAsync(CancellationToken cancellationToken = default)
    {
        var (leader, _) = await ReadLeaderAsync(cancellationToken).ConfigureAwait(false);
        return leader == null ? null : ToInfo(leader);
    }

    /// <summary>
    /// Streams the leader: the current one first (once there is one), then every later leader and
    /// every value it proclaims, in order. Successors are read at the revision where their
    /// predecessor's key was deleted, so an observer that falls behind still sees every term (as
    /// long as that history is not compacted; then it continues from the current leader).
    /// </summary>
    public async IAsyncEnumerable<LeaderInfo> ObserveAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prefix = Name + "/";
        long at = 0;
        while (true)
        {
            KeyValue? leader;
            long revision;
            try
            {
                (leader, revision) = await ReadLeaderAsync(cancellationToken, at).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.OutOfRange && at != 0)
            {
                // That history is compacted: continue from the present.
                at = 0;
                continue;
            }

            if (leader == null)
            {
                // No candidate at that revision: the first one to appear leads at once.
                at = 0;
                await foreach (var e in _client.WatchAsync(prefix, new WatchOptions { Prefix = true, StartRevision = revision + 1, NoDelete = true }, cancellationToken).ConfigureAwait(false))
                {
                    at = e.Revision;
                    break;
                }

                continue;
            }

            yield return ToInfo(leader);
            at = 0;
            await foreach (var e in _client.WatchAsync(leader.Key, new WatchOptions { StartRevision = revision + 1 }, cancellationToken).ConfigureAwait(false))
            {
                if (e.Kind == WatchEventKind.Delete)
                {
                    at = e.Revision;
                    break;
                }

                yield return ToInfo(e.Kv);
            }
        }
    }

    private async Task<(KeyValue? Leader, long Revision)> ReadLeaderAsync(CancellationToken cancellationToken, long atRevision = 0)
    {
        var response = await _client.RangeAsync(
            new RangeRequest
            {
                Key = Keys.From(Name + "/"),
                RangeEnd = Keys.PrefixEnd(Name + "/"),
                SortTarget = RangeRequest.Types.SortTarget.Create,
                SortOrder = RangeRequest.Types.SortOrder.Ascend,
                Limit = 1,
                Revision = atRevision,
            },
            cancellationToken).ConfigureAwait(false);
        return (response.Kvs.Count == 0 ? null : response.Kvs[0], atRevision != 0 ? atRevision : response.Header.Revision);
    }

    private static LeaderInfo ToInfo(KeyValue kv) => new(kv.Key.ToStringUtf8(), kv.Value.ToStringUtf8(), kv.CreateRevision);
}

/// <summary>
/// Being leader. <see cref="LostToken"/> fires when leadership ends for any reason other than
/// <see cref="ResignAsync"/>: the session was lost or the leader key was deleted. Disposing resigns.
/// </summary>
public sealed class Leadership : IAsyncDisposable
{
    private readonly ArbiterClient _client;
    private readonly Session _session;
    private readonly bool _ownsSession;
    private readonly CancellationTokenSource _lost;
    private readonly CancellationTokenSource _stopWatch = new();
    private Task _watchTask = Task.CompletedTask;
    private int _resigned;

    private Leadership(ArbiterClient client, Session session, bool ownsSession, string key, long revision)
    {
        _client = client;
        _session = session;
        _ownsSession = ownsSession;
        Key = key;
        Revision = revision;
        _lost = CancellationTokenSource.CreateLinkedTokenSource(session.LostToken);
        Changed("gained");
        _lost.Token.Register(static state => ((Leadership)state!).Lost(), this);
    }

    /// <summary>The leader key.</summary>
    public string Key { get; }

    /// <summary>The leader key's create revision: this term's fencing token.</summary>
    public long Revision { get; }

    /// <summary>Fires when leadership is lost (not on resign).</summary>
    public CancellationToken LostToken => _lost.Token;

    /// <summary>True while this process leads (not resigned, not lost).</summary>
    public bool IsLeader => Volatile.Read(ref _resigned) == 0 && !_lost.IsCancellationRequested;

    /// <summary>The guard that holds only while this term lasts; add it to your own transactions.</summary>
    public Compare Guard => Cmp.CreateRevision(Key) == Revision;

    /// <summary>Changes the value observers see; false when no longer leader.</summary>
    public async Task<bool> ProclaimAsync(string value, CancellationToken cancellationToken = default)
    {
        var response = await _client.Txn().If(Guard).Then(Op.Put(Key, value, _session.LeaseId)).CommitAsync(cancellationToken).ConfigureAwait(false);
        return response.Succeeded;
    }

    /// <summary>Steps down (deletes the leader key if it is still this term's); the next candidate takes over.</summary>
    public async Task ResignAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _resigned, 1) != 0)
        {
            return;
        }

        if (!_lost.IsCancellationRequested)
        {
            Changed("resigned");
        }

        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.election.resign");
        activity?.SetTag("arbiter.election.revision", Revision);
        await _stopWatch.CancelAsync().ConfigureAwait(false);
        await _watchTask.ConfigureAwait(false);
        try
        {
            await WaitQueue.DeleteOwnedAsync(_client, Key, Revision, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (_ownsSession)
            {
                await _session.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Resigns.</summary>
    public async ValueTask DisposeAsync()
    {
        using var cleanup = Timeouts.Cleanup();
        try
        {
            await ResignAsync(cleanup.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            // Unreachable: the key goes with the lease.
        }
    }

    private static void Changed(string change) =>
        RecipeTelemetry.LeadershipChanges.Add(1, new KeyValuePair<string, object?>("arbiter.leadership.change", change));

    /// <summary>Leadership ended without a resign: counted, and a span saying so (the term's revision).</summary>
    private void Lost()
    {
        if (Volatile.Read(ref _resigned) != 0)
        {
            return;
        }

        Changed("lost");
        using var activity = RecipeTelemetry.Source.StartActivity("arbiter.election.lost", System.Diagnostics.ActivityKind.Internal, parentContext: default);
        activity?.SetTag("arbiter.election.revision", Revision);
        activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, "leadership lost");
    }

    internal static Leadership Start(ArbiterClient client, Session session, bool ownsSession, string key, long revision)
    {
        var leadership = new Leadership(client, session, ownsSession, key, revision);
        leadership._watchTask = Task.Run(leadership.WatchOwnKeyAsync, CancellationToken.None);
        return leadership;
    }

    private async Task WatchOwnKeyAsync()
    {
        try
        {
            await foreach (var e in _client.WatchAsync(Key, new WatchOptions { StartRevision = Revision, NoPut = true }, _stopWatch.Token).ConfigureAwait(false))
            {
                if (e.Kind == WatchEventKind.Delete)
                {
                    await _lost.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Resigned.
        }
        catch (WatchCompactedException)
        {
            // Cannot tell what happened in between: treat as lost, the safe side.
            await _lost.CancelAsync().ConfigureAwait(false);
        }
    }
}
