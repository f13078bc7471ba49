using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Core;
using Arbiter.Core.Auth;
using Grpc.Core;

namespace Arbiter.Cluster.Tests;

/// <summary>
/// The retry the cluster tests' set-up steps use: it asks again on a leader-loss answer, and on
/// nothing else, so that it cannot hide a real failure.
/// </summary>
public sealed class LeaderLossRetryTests
{
    private int _checks; // xunit makes one instance per test
    [Fact]
    public async Task Leader_loss_answers_are_asked_again_until_the_call_succeeds()
    {
        var answers = new Queue<EtcdError?>([EtcdError.NoLeader, EtcdError.TimeoutDueToLeaderFail, EtcdError.LeaderChanged, null]);
        var calls = 0;
        var logged = new List<string>();

        var result = await LeaderLossRetry.RetryAsync("call", () => Answer(answers, ref calls), logged.Add);

        Assert.Equal(4, result);
        Assert.Equal(4, calls);
        Assert.Equal(3, logged.Count(line => line.Contains("retrying", StringComparison.Ordinal)));
    }

    /// <summary>A plain timeout is not retried: its outcome is unknown, and a test should see a slow cluster.</summary>
    [Theory]
    [InlineData(StatusCode.Unavailable, "etcdserver: request timed out")]
    [InlineData(StatusCode.NotFound, "etcdserver: requested lease not found")]
    [InlineData(StatusCode.DeadlineExceeded, "etcdserver: no leader")]
    public async Task Any_other_answer_fails_the_first_try(StatusCode code, string detail)
    {
        var calls = 0;
        var failed = await Assert.ThrowsAsync<RpcException>(() => LeaderLossRetry.RetryAsync<int>("call", () =>
        {
            calls++;
            throw new RpcException(new Status(code, detail));
        }));

        Assert.Equal(detail, failed.Status.Detail);
        Assert.Equal(1, calls);
    }

    /// <summary>An add whose first try was lost with the leader and took effect: the next try's "already exists" means done.</summary>
    [Fact]
    public async Task An_add_answered_already_exists_after_a_leader_loss_answer_is_done()
    {
        var answers = new Queue<EtcdError?>([EtcdError.LeaderChanged, AuthErrors.UserAlreadyExist]);
        var calls = 0;

        await LeaderLossRetry.AddOnceAsync("add user", AuthErrors.UserAlreadyExist, () => Answer(answers, ref calls));

        Assert.Equal(2, calls);
    }

    /// <summary>On the first try "already exists" is a real failure (the test set something up twice), not hidden.</summary>
    [Fact]
    public async Task An_add_answered_already_exists_on_its_first_try_fails()
    {
        var answers = new Queue<EtcdError?>([AuthErrors.UserAlreadyExist]);
        var calls = 0;

        var failed = await Assert.ThrowsAsync<RpcException>(() => LeaderLossRetry.AddOnceAsync("add user", AuthErrors.UserAlreadyExist, () => Answer(answers, ref calls)));

        Assert.Equal(AuthErrors.UserAlreadyExist.Message, failed.Status.Detail);
        Assert.Equal(1, calls);
    }

    /// <summary>Another error after a retry is not taken for "already exists".</summary>
    [Fact]
    public async Task An_add_answered_another_error_after_a_retry_fails()
    {
        var answers = new Queue<EtcdError?>([EtcdError.NoLeader, AuthErrors.RoleAlreadyExist]);
        var calls = 0;

        var failed = await Assert.ThrowsAsync<RpcException>(() => LeaderLossRetry.AddOnceAsync("add user", AuthErrors.UserAlreadyExist, () => Answer(answers, ref calls)));

        Assert.Equal(AuthErrors.RoleAlreadyExist.Message, failed.Status.Detail);
        Assert.Equal(2, calls);
    }

    /// <summary>An auth enable whose first try was lost with the leader and took effect: the retry asks first, and does not repeat it.</summary>
    [Fact]
    public async Task A_change_whose_first_try_took_effect_is_not_repeated()
    {
        var answers = new Queue<EtcdError?>([EtcdError.LeaderChanged, AuthErrors.UserEmpty]);
        var calls = 0;

        await LeaderLossRetry.ChangeOnceAsync("enable auth", () => Answer(answers, ref calls), () => InEffect(true));

        Assert.Equal(1, calls);
        Assert.Equal(1, _checks);
    }

    /// <summary>The first try is always made, and a retry whose check says "not yet" makes the change again.</summary>
    [Fact]
    public async Task A_change_not_yet_in_effect_is_made_again_after_a_leader_loss_answer()
    {
        var answers = new Queue<EtcdError?>([EtcdError.NoLeader, null]);
        var calls = 0;

        await LeaderLossRetry.ChangeOnceAsync("enable auth", () => Answer(answers, ref calls), () => InEffect(false));

        Assert.Equal(2, calls);
        Assert.Equal(1, _checks);
    }

    /// <summary>A refusal on the first try is a real failure: nothing is asked, nothing hidden.</summary>
    [Fact]
    public async Task A_change_refused_on_its_first_try_fails()
    {
        var answers = new Queue<EtcdError?>([AuthErrors.UserEmpty]);
        var calls = 0;

        var failed = await Assert.ThrowsAsync<RpcException>(() => LeaderLossRetry.ChangeOnceAsync("enable auth", () => Answer(answers, ref calls), () => InEffect(true)));

        Assert.Equal(AuthErrors.UserEmpty.Message, failed.Status.Detail);
        Assert.Equal(1, calls);
        Assert.Equal(0, _checks);
    }

    /// <summary>The check <see cref="LeaderLossRetry.ChangeOnceAsync"/> asks before a later try: answers <paramref name="answer"/>, counted in <see cref="_checks"/>.</summary>
    private Task<bool> InEffect(bool answer)
    {
        _checks++;
        return Task.FromResult(answer);
    }

    private static Task<int> Answer(Queue<EtcdError?> answers, ref int calls)
    {
        calls++;
        return answers.Dequeue() is { } error
            ? Task.FromException<int>(new RpcException(new Status(StatusCode.Unavailable, error.Message)))
            : Task.FromResult(calls);
    }
}
