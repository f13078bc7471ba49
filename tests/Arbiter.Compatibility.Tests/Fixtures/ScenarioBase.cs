using System.Runtime.CompilerServices;
using Arbiter.Compatibility.Tests.Etcdctl;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>
/// Base of every scenario class: one target (shared per class), an etcdctl bound to it, a unique key
/// prefix per test, and a report of server log + etcdctl transcript when a test fails.
/// </summary>
public abstract class ScenarioBase
{
    private static int _prefixCounter;

    protected ScenarioBase(ServerFixture target, ITestOutputHelper output)
    {
        Target = target;
        Output = output;
        Etcdctl = new EtcdctlRunner(target.Endpoint);
        Prefix = $"t{Interlocked.Increment(ref _prefixCounter)}-{Guid.NewGuid().ToString("N")[..6]}/";
    }

    protected ServerFixture Target { get; }

    protected ITestOutputHelper Output { get; }

    protected EtcdctlRunner Etcdctl { get; }

    /// <summary>Keys of this test live under this prefix, so tests can share a server.</summary>
    protected string Prefix { get; }

    protected static TimeSpan Deadline => TimeSpan.FromSeconds(20);

    /// <summary>Runs the test body; on failure prints what is needed to understand it.</summary>
    protected async Task Guard(Func<Task> body, [CallerMemberName] string testName = "")
    {
        try
        {
            await body().ConfigureAwait(false);
        }
        catch (Exception)
        {
            Output.WriteLine($"=== {testName} failed against {Target.TargetName} at {Target.Endpoint}; prefix {Prefix}");
            Output.WriteLine("=== etcdctl transcript ===");
            Output.WriteLine(Etcdctl.Transcript);
            Output.WriteLine("=== server log (tail) ===");
            Output.WriteLine(Tail(Target.Log, 200));
            throw;
        }
    }

    protected static string Tail(string text, int linesMax)
    {
        var lines = text.Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - linesMax)));
    }

    /// <summary>Polls <paramref name="condition"/> until true or the deadline passes (then throws).</summary>
    protected static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition().ConfigureAwait(false))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}");
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }
}
