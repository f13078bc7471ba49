using Arbiter.Verification.Checkers;
using Arbiter.Verification.History;

namespace Arbiter.Verification.Tests.Checkers;

public sealed class WatchAndLockCheckerTests(ITestOutputHelper output)
{
    private static HistoryFile Load(string name) => HistoryFile.Load(Path.Combine(AppContext.BaseDirectory, "TestData", name));

    private const long Ms = 1_000_000;

    private static Operation Put(int id, string key, string value, long revision) =>
        new() { Id = id, Process = 0, Kind = OperationKind.Write, Key = key, Value = value, Revision = revision, InvokeNs = id * 10 * Ms, CompleteNs = (id * 10 + 5) * Ms, Status = OperationStatus.Ok };

    private static WatchResponseRecord Events(params (long Revision, string Key, string Value)[] events) =>
        new(0, events.Length == 0 ? 0 : events.Max(e => e.Revision), false, [.. events.Select(e => new WatchEventRecord(e.Revision, e.Key, e.Value))]);

    private static readonly Operation[] Puts = [Put(0, "w/a", "va", 2), Put(1, "w/b", "vb", 3), Put(2, "w/c", "vc", 4)];

    private void Show(IReadOnlyList<Violation> violations)
    {
        foreach (var v in violations)
        {
            output.WriteLine($"{v.Kind}: {v.Explanation}");
        }
    }

    [Fact]
    public void Out_of_order_watch_events_are_caught()
    {
        var file = Load("watch-out-of-order.json");
        var violations = WatchChecker.Check(file.Watches, file.Operations);
        Show(violations);
        Assert.Contains(violations, v => v.Kind == "ordered");
    }

    [Fact]
    public void A_complete_ordered_watch_passes()
    {
        var stream = new WatchStreamRecord(0, "w/", 2, 1, [Events((2, "w/a", "va")), Events((3, "w/b", "vb"), (4, "w/c", "vc"))]);
        Assert.Empty(WatchChecker.Check([stream], Puts));
    }

    [Theory]
    [InlineData("reliable")]
    [InlineData("unique")]
    [InlineData("atomic")]
    [InlineData("bookmarkable")]
    [InlineData("resumable")]
    [InlineData("event-disagrees-with-kv")]
    [InlineData("unwritten-event")]
    public void Each_watch_guarantee_violation_is_caught(string kind)
    {
        WatchResponseRecord[] responses = kind switch
        {
            "reliable" => [Events((2, "w/a", "va")), Events((4, "w/c", "vc"))],
            "unique" => [Events((2, "w/a", "va")), Events((3, "w/b", "vb")), Events((3, "w/b", "vb")), Events((4, "w/c", "vc"))],
            "atomic" => [Events((2, "w/a", "va"), (3, "w/b", "vb")), Events((3, "w/b2", "vb2")), Events((4, "w/c", "vc"))],
            "bookmarkable" => [Events((2, "w/a", "va")), new(0, 3, true, []), Events((3, "w/b", "vb")), Events((4, "w/c", "vc"))],
            "resumable" => [Events((3, "w/b", "vb")), Events((4, "w/c", "vc"))],
            "event-disagrees-with-kv" => [Events((2, "w/a", "va")), Events((3, "w/b", "vc")), Events((4, "w/c", "vc"))],
            "unwritten-event" => [Events((2, "w/a", "va")), Events((3, "w/b", "vb")), Events((4, "w/c", "vc")), Events((5, "w/d", "never"))],
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var history = kind == "atomic" ? [.. Puts, Put(3, "w/b2", "vb2", 0)] : Puts;
        var violations = WatchChecker.Check([new WatchStreamRecord(0, "w/", 2, 1, responses)], history);
        Show(violations);
        Assert.Contains(violations, v => v.Kind == kind);
    }

    [Fact]
    public void Fencing_token_going_backwards_is_caught()
    {
        var file = Load("fencing-token-backwards.json");
        var violations = LockChecker.Check(file.Holds, file.Store);
        Show(violations);
        Assert.Equal("fencing-token-backwards", Assert.Single(violations).Kind);
    }

    [Fact]
    public void Overlapping_holders_double_grants_and_token_order_are_caught_and_expired_leases_excused()
    {
        LockHold[] overlap = [new(0, "L", 5, 10 * Ms, 50 * Ms, 1000 * Ms), new(1, "L", 6, 40 * Ms, 60 * Ms, 1000 * Ms)];
        Assert.Contains(LockChecker.Check(overlap, []), v => v.Kind == "overlapping-holders");

        LockHold[] expired = [new(0, "L", 5, 10 * Ms, 50 * Ms, 30 * Ms), new(1, "L", 6, 40 * Ms, 60 * Ms, 1000 * Ms)];
        Assert.Empty(LockChecker.Check(expired, []));

        LockHold[] doubled = [new(0, "L", 5, 10 * Ms, 20 * Ms, 1000 * Ms), new(1, "L", 5, 30 * Ms, 40 * Ms, 1000 * Ms)];
        Assert.Contains(LockChecker.Check(doubled, []), v => v.Kind == "double-grant");

        LockHold[] backwards = [new(0, "L", 7, 10 * Ms, 20 * Ms, 1000 * Ms), new(1, "L", 6, 30 * Ms, 40 * Ms, 1000 * Ms)];
        Assert.Contains(LockChecker.Check(backwards, []), v => v.Kind == "token-order");

        var store = new FencedStore();
        Assert.True(store.Write(0, "r", 0, 5, "a"));
        Assert.False(store.Write(1, "r", 1, 4, "b"));
        Assert.True(store.Write(2, "r", 1, 6, "c"));
        Assert.Empty(LockChecker.Check([], store.Log()));
    }
}
