using System.Diagnostics;
using System.Diagnostics.Metrics;
using Arbiter.Client.Diagnostics;

namespace Arbiter.Recipes.Diagnostics;

/// <summary>
/// The recipes' spans and instruments, under the SDK's names (<see cref="ArbiterTelemetry.ActivitySourceName"/>,
/// <see cref="ArbiterTelemetry.MeterName"/>): one subscription covers the client and the recipes.
/// Nothing is recorded while nobody listens.
/// </summary>
internal static class RecipeTelemetry
{
    public static readonly ActivitySource Source = new(ArbiterTelemetry.ActivitySourceName, ArbiterTelemetry.Version);

    private static readonly Meter Meter = new(ArbiterTelemetry.MeterName, ArbiterTelemetry.Version);

    /// <summary>Seconds from asking for a lock (mutex, semaphore permit, read or write lock) to the outcome.</summary>
    public static readonly Histogram<double> LockWaitDuration = Meter.CreateHistogram<double>(
        "arbiter.client.lock.wait.duration", unit: "s", description: "Time from asking for a lock to the outcome, by arbiter.lock.kind and arbiter.lock.outcome.");

    /// <summary>Locks this process holds now.</summary>
    public static readonly UpDownCounter<long> LocksHeld = Meter.CreateUpDownCounter<long>(
        "arbiter.client.locks.held", unit: "{lock}", description: "Locks (mutexes, semaphore permits, read and write locks) this process holds, by arbiter.lock.kind.");

    /// <summary>Leadership gained, lost or resigned.</summary>
    public static readonly Counter<long> LeadershipChanges = Meter.CreateCounter<long>(
        "arbiter.client.leadership.changes", unit: "{change}", description: "Leadership gained, lost or resigned by this process, by arbiter.leadership.change.");

    /// <summary>Interactive transactions committed.</summary>
    public static readonly Counter<long> TransactionCommits = Meter.CreateCounter<long>(
        "arbiter.client.transaction.commits", unit: "{transaction}", description: "Transactions committed, by arbiter.transaction.mode.");

    /// <summary>Interactive transactions aborted (rolled back, or failed).</summary>
    public static readonly Counter<long> TransactionAborts = Meter.CreateCounter<long>(
        "arbiter.client.transaction.aborts", unit: "{transaction}", description: "Transactions aborted, by arbiter.transaction.mode and arbiter.transaction.outcome.");

    /// <summary>Optimistic (and STM) commits refused by a conflict.</summary>
    public static readonly Counter<long> TransactionConflicts = Meter.CreateCounter<long>(
        "arbiter.client.transaction.conflicts", unit: "{conflict}", description: "Commits refused because what they read changed, by arbiter.transaction.mode.");

    /// <summary>Marks <paramref name="activity"/> failed by <paramref name="error"/> (the gRPC code when there is one).</summary>
    public static void Fail(Activity? activity, Exception error)
    {
        if (activity is null)
        {
            return;
        }

        var code = error is Grpc.Core.RpcException rpc ? rpc.StatusCode.ToString() : error.GetType().Name;
        activity.SetTag("error.type", code);
        activity.SetStatus(ActivityStatusCode.Error, code);
    }

    /// <summary>
    /// Runs <paramref name="body"/> as the span <paramref name="spanName"/> tagged with the recipe's
    /// name (a key prefix, see <see cref="ArbiterTelemetry.KeyPrefixOf"/>) and its outcome:
    /// <paramref name="outcomeOf"/>'s answer, or cancelled/timeout/error when it throws.
    /// </summary>
    public static async Task<T> TraceAsync<T>(string spanName, string recipeName, Func<Task<T>> body, Func<T, string> outcomeOf)
    {
        using var activity = Source.StartActivity(spanName);
        activity?.SetTag("arbiter.recipe.name", ArbiterTelemetry.KeyPrefixOf(Client.Keys.From(recipeName + "/").Span));
        try
        {
            var result = await body().ConfigureAwait(false);
            activity?.SetTag("arbiter.outcome", outcomeOf(result));
            return result;
        }
        catch (Exception e)
        {
            activity?.SetTag("arbiter.outcome", e switch { OperationCanceledException => "cancelled", TimeoutException => "timeout", _ => "error" });
            if (e is not OperationCanceledException)
            {
                Fail(activity, e);
            }

            throw;
        }
    }

    /// <summary>The outcome tag of a transaction that failed with <paramref name="error"/>.</summary>
    public static string TransactionOutcomeOf(Exception error) => error switch
    {
        Transactions.DeadlockException => "deadlock",
        Transactions.ConflictException => "conflict",
        Transactions.LockTimeoutException => "lock_timeout",
        Transactions.LockBusyException => "busy",
        Transactions.TransactionException => "aborted",
        OperationCanceledException => "cancelled",
        _ => "error",
    };

    /// <summary>Counts a commit of a transaction in <paramref name="mode"/> (pessimistic, optimistic, cas, stm).</summary>
    public static void Committed(string mode) =>
        TransactionCommits.Add(1, new KeyValuePair<string, object?>("arbiter.transaction.mode", mode));

    /// <summary>Counts an abort (and a conflict, when that was the reason); <paramref name="error"/> null: rolled back by the caller.</summary>
    public static void Aborted(string mode, Exception? error)
    {
        var outcome = error is null ? "rollback" : TransactionOutcomeOf(error);
        TransactionAborts.Add(1, new("arbiter.transaction.mode", mode), new("arbiter.transaction.outcome", outcome));
        if (error is Transactions.ConflictException)
        {
            TransactionConflicts.Add(1, new KeyValuePair<string, object?>("arbiter.transaction.mode", mode));
        }
    }

    /// <summary>The outcome tag of a wait that returns false on timeout.</summary>
    public static string PassedOrTimeout(bool passed) => passed ? "passed" : "timeout";

    /// <summary>The outcome tag of a wait that ended with <paramref name="error"/> (null: acquired).</summary>
    public static string OutcomeOf(Exception? error, bool timedOut) => (error, timedOut) switch
    {
        (null, false) => "acquired",
        (null, true) => "timeout",
        (OperationCanceledException, _) => "cancelled",
        (LockLostException, _) => "lost",
        _ => "error",
    };
}
