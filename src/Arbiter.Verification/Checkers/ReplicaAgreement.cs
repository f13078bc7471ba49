using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Verification.Checkers;

/// <summary>
/// After the final heal and the quiet tail: do the members hold the same data? Client histories
/// can look linearizable while a member diverged from the others (Arbiter's leader-pause bug of
/// 2026-12-03 wrote an entry on one member only, seen by no client) or never caught up (a member
/// stuck at a snapshot). Every member listed by the cluster must reach the same revision, and at
/// that revision its key-value hash (<c>Maintenance.HashKV</c>, etcd's own check) must match.
/// </summary>
public static class ReplicaAgreement
{
    /// <summary>A member's revision, and its hash at the revision compared.</summary>
    /// <param name="Endpoint">Client URL.</param>
    /// <param name="Revision">Its applied revision when sampled.</param>
    /// <param name="HashRevision">The revision the hash is of.</param>
    /// <param name="Hash">HashKV at <paramref name="HashRevision"/>.</param>
    public sealed record MemberSample(string Endpoint, long Revision, long HashRevision, uint Hash);

    /// <summary>The <see cref="MemberSample.Revision"/> of a member that never answered.</summary>
    public const long Unanswered = -1;

    /// <summary>
    /// Violations in final samples: <c>replica-divergence</c> when members disagree on the data at
    /// one revision (safety), <c>replica-behind</c> when a member never reached the others'
    /// revision (liveness).
    /// </summary>
    public static IReadOnlyList<Violation> Compare(IReadOnlyList<MemberSample> samples)
    {
        var violations = new List<Violation>();
        var byHash = samples.Where(s => s.Revision != Unanswered).GroupBy(s => (s.HashRevision, s.Hash)).ToList();
        if (byHash.Count > 1)
        {
            violations.Add(new Violation(
                "replica-divergence", string.Empty,
                $"members hold different data at revision {samples[0].HashRevision}: " +
                string.Join("; ", byHash.Select(g => $"hash {g.Key.Hash} on {string.Join(", ", g.Select(s => s.Endpoint))}")),
                []));
        }

        var newest = samples.Count == 0 ? 0 : samples.Max(s => s.Revision);
        foreach (var behind in samples.Where(s => s.Revision < newest))
        {
            violations.Add(new Violation(
                "replica-behind", string.Empty,
                behind.Revision == Unanswered
                    ? $"{behind.Endpoint} did not answer after the final heal"
                    : $"{behind.Endpoint} stayed at revision {behind.Revision} while others reached {newest}",
                []));
        }

        return violations;
    }

    /// <summary>
    /// Waits (up to <paramref name="wait"/>) for every listed member to show the same revision,
    /// then samples each member's hash at the lowest revision all of them have.
    /// </summary>
    /// <exception cref="RpcException">No member answered the member list, or a listed member did not answer at all.</exception>
    public static async Task<IReadOnlyList<MemberSample>> SampleAsync(IReadOnlyList<string> endpoints, Func<string, GrpcChannel> channel, TimeSpan wait, CancellationToken cancellationToken)
    {
        var members = await ListMembersAsync(endpoints, channel, cancellationToken).ConfigureAwait(false);
        var deadline = DateTime.UtcNow + wait;
        var revisions = new Dictionary<string, long>(StringComparer.Ordinal);
        while (true)
        {
            foreach (var member in members)
            {
                try
                {
                    var status = await new Maintenance.MaintenanceClient(channel(member))
                        .StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken).ConfigureAwait(false);
                    revisions[member] = status.Header.Revision;
                }
                catch (RpcException)
                {
                    revisions.Remove(member);
                }
            }

            if ((revisions.Count == members.Count && revisions.Values.Distinct().Count() == 1) || DateTime.UtcNow >= deadline)
            {
                break;
            }

            await Task.Delay(200, cancellationToken).ConfigureAwait(false);
        }

        var common = revisions.Count == 0 ? 0 : revisions.Values.Min();
        var samples = members.Where(m => !revisions.ContainsKey(m)).Select(m => new MemberSample(m, Unanswered, common, 0)).ToList();
        foreach (var member in members.Where(revisions.ContainsKey))
        {
            var hash = await new Maintenance.MaintenanceClient(channel(member))
                .HashKVAsync(new HashKVRequest { Revision = common }, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken).ConfigureAwait(false);
            samples.Add(new MemberSample(member, revisions[member], common, hash.Hash));
        }

        return samples;
    }

    private static async Task<IReadOnlyList<string>> ListMembersAsync(IReadOnlyList<string> endpoints, Func<string, GrpcChannel> channel, CancellationToken cancellationToken)
    {
        RpcException? last = null;
        foreach (var endpoint in endpoints)
        {
            try
            {
                var list = await new Protocol.Etcd.Cluster.ClusterClient(channel(endpoint))
                    .MemberListAsync(new MemberListRequest(), deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken).ConfigureAwait(false);
                return [.. list.Members.Where(m => !m.IsLearner).Select(m => m.ClientURLs.FirstOrDefault()).OfType<string>().Order(StringComparer.Ordinal)];
            }
            catch (RpcException e)
            {
                last = e;
            }
        }

        throw last ?? new RpcException(new Status(StatusCode.Unavailable, "no endpoint to list the members"));
    }
}
