using Arbiter.Client;
using Arbiter.Recipes;
using Grpc.Core;
using Microsoft.Extensions.Hosting;

namespace Arbiter.Hosting;

/// <summary>
/// A background service that does its work only while it leads an election: it campaigns, runs
/// <see cref="ExecuteAsLeaderAsync"/> with a token that fires when leadership is lost or the host
/// stops, then resigns and campaigns again. At most one process runs the work at a time, as far as
/// leases allow: guard side effects with <see cref="CurrentLeadership"/>'s <c>Guard</c> (fencing).
/// </summary>
public abstract class LeaderBackgroundService : BackgroundService
{
    private readonly LeaderElection _election;
    private readonly string _candidateValue;

    /// <summary>Campaigns in <paramref name="electionName"/> with <paramref name="candidateValue"/>.</summary>
    protected LeaderBackgroundService(ArbiterClient client, string electionName, string candidateValue, RecipeOptions? options = null)
    {
        _election = new LeaderElection(client, electionName, options ?? new RecipeOptions { SessionTtlSeconds = 10 });
        _candidateValue = candidateValue;
    }

    /// <summary>The term in progress, or null when not leading.</summary>
    public Leadership? CurrentLeadership { get; private set; }

    /// <summary>Pause before campaigning again after a failure, in ms.</summary>
    protected virtual int RetryDelayMs => 1000;

    /// <summary>The leader-only work; return (or throw) to give up leadership, observe the token to stop when it is lost.</summary>
    protected abstract Task ExecuteAsLeaderAsync(CancellationToken leadershipToken);

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var leadership = await _election.CampaignAsync(_candidateValue, cancellationToken: stoppingToken).ConfigureAwait(false);
                CurrentLeadership = leadership;
                using var term = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, leadership.LostToken);
                try
                {
                    await ExecuteAsLeaderAsync(term.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (term.IsCancellationRequested)
                {
                    // Lost leadership or stopping: resign (dispose) and go round again.
                }
                finally
                {
                    CurrentLeadership = null;
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is RpcException or LockLostException)
            {
                await Task.Delay(RetryDelayMs, stoppingToken).ConfigureAwait(false);
            }
        }
    }
}
