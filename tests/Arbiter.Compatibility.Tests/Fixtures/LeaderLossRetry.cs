using System.Diagnostics;
using Arbiter.Core;
using Grpc.Core;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>
/// Asks again when a cluster answers that it has no leader now, or lost the leader under the call.
/// A cluster may change leader at any time (a member paused on a busy machine misses heartbeats),
/// and an etcd client retries such answers; a test that is not about leader loss does the same.
/// </summary>
public static class LeaderLossRetry
{
    /// <summary>
    /// The answers that mean "no leader now, or the leader was lost under this call": ask again. Not
    /// etcd's plain "request timed out": its outcome is unknown too, but it says the cluster was slow,
    /// which a test should see.
    /// </summary>
    public static readonly string[] Errors = [EtcdError.NoLeader.Message, EtcdError.LeaderChanged.Message, EtcdError.TimeoutDueToLeaderFail.Message];

    /// <summary>How long <see cref="RetryAsync"/> keeps asking.</summary>
    public static readonly TimeSpan RetryTimeout = TimeSpan.FromSeconds(30);

    /// <summary>A try that fails with a leader-loss answer must fail before the server's request timeout (7 s): no call hangs on a lost leader.</summary>
    public static readonly TimeSpan PromptFailureMax = TimeSpan.FromSeconds(7);

    /// <summary>
    /// Calls until it succeeds (for up to <see cref="RetryTimeout"/>); only a leader-loss error may end a try, and only
    /// before <see cref="PromptFailureMax"/>. For calls that are safe to repeat. Says each retry to <paramref name="log"/> (if given).
    /// </summary>
    public static async Task<T> RetryAsync<T>(string what, Func<Task<T>> call, Action<string>? log = null)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var attempt = Stopwatch.StartNew();
            try
            {
                var result = await call();
                log?.Invoke($"{what}: answered after {clock.ElapsedMilliseconds} ms");
                return result;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && Errors.Contains(e.Status.Detail) && clock.Elapsed < RetryTimeout)
            {
                log?.Invoke($"{what}: \"{e.Status.Detail}\" after {attempt.ElapsedMilliseconds} ms; retrying");
                Assert.True(attempt.Elapsed < PromptFailureMax, $"{what} took {attempt.ElapsedMilliseconds} ms to fail with \"{e.Status.Detail}\", not less than the request timeout");
            }
        }
    }

    /// <summary>
    /// An add (a user, a role: not safe to repeat), asked again like <see cref="RetryAsync"/>. A
    /// leader-loss answer leaves the outcome unknown, so on a later try <paramref name="alreadyExists"/>
    /// means an earlier try took effect and the add is done; on the first try it is a real failure.
    /// </summary>
    public static async Task AddOnceAsync<T>(string what, EtcdError alreadyExists, Func<Task<T>> call, Action<string>? log = null)
    {
        var tries = 0;
        try
        {
            await RetryAsync(what, () =>
            {
                tries++;
                return call();
            }, log);
        }
        catch (RpcException e) when (tries > 1 && e.Status.Detail == alreadyExists.Message)
        {
            log?.Invoke($"{what}: \"{e.Status.Detail}\" on try {tries}: an earlier try took effect");
        }
    }

    /// <summary>
    /// A change that a repeat may refuse once it took effect (auth enable: once auth is on, a repeat
    /// without a token is refused), asked again like <see cref="RetryAsync"/>. A leader-loss answer
    /// leaves the outcome unknown, so before every later try <paramref name="done"/> says whether
    /// an earlier try took effect; the first try is always made.
    /// </summary>
    public static async Task ChangeOnceAsync<T>(string what, Func<Task<T>> call, Func<Task<bool>> done, Action<string>? log = null)
    {
        var tries = 0;
        await RetryAsync(what, async () =>
        {
            if (tries++ > 0 && await done())
            {
                log?.Invoke($"{what}: an earlier try took effect (checked before try {tries})");
                return true;
            }

            await call();
            return true;
        }, log);
    }
}
