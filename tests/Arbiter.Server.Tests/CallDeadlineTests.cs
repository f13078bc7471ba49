using Arbiter.Node;

namespace Arbiter.Server.Tests;

/// <summary>How long a cluster member lets a write or a linearizable read wait before it answers with etcd's error: the request timeout, or less when the client's deadline comes first.</summary>
public sealed class CallDeadlineTests
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(7);
    private static readonly DateTime Now = new(2026, 12, 4, 16, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Without_a_client_deadline_the_request_timeout_applies()
    {
        Assert.Null(CallDeadline.Current);
        Assert.Equal(RequestTimeout, CallDeadline.Budget(RequestTimeout, Now));
    }

    [Fact]
    public void A_deadline_later_than_the_request_timeout_changes_nothing()
    {
        using var call = CallDeadline.Enter(Now.AddSeconds(30));
        Assert.Equal(RequestTimeout, CallDeadline.Budget(RequestTimeout, Now));
    }

    [Fact]
    public void The_answer_comes_the_full_margin_before_a_deadline_of_seconds()
    {
        using var call = CallDeadline.Enter(Now.AddSeconds(2));
        Assert.Equal(TimeSpan.FromMilliseconds(2000 - CallDeadline.MarginMsMax), CallDeadline.Budget(RequestTimeout, Now));
    }

    [Fact]
    public void A_short_deadline_keeps_three_quarters_of_its_time()
    {
        // A 200 ms deadline minus the full margin would leave 0 ms: writes that take 5 ms would fail.
        using var call = CallDeadline.Enter(Now.AddMilliseconds(200));
        Assert.Equal(TimeSpan.FromMilliseconds(150), CallDeadline.Budget(RequestTimeout, Now));
    }

    [Fact]
    public void A_passed_deadline_leaves_nothing()
    {
        using var call = CallDeadline.Enter(Now.AddMilliseconds(-5));
        Assert.Equal(TimeSpan.Zero, CallDeadline.Budget(RequestTimeout, Now));
    }

    [Fact]
    public async Task A_task_started_during_the_call_sees_no_deadline_once_the_call_has_ended()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<DateTime?> background;
        using (CallDeadline.Enter(Now.AddSeconds(2)))
        {
            // Task.Run captures the call's async flow, as a loop started lazily by a request does.
            background = Task.Run(async () =>
            {
                await release.Task;
                return CallDeadline.Current;
            });
            Assert.Equal(Now.AddSeconds(2), CallDeadline.Current);
        }

        release.SetResult();
        Assert.Null(await background);
    }
}
