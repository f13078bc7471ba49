using System.Reflection;
using Arbiter.Client;
using Arbiter.Embedded;
using Arbiter.Node;
using Arbiter.Protocol.Etcd;

namespace Arbiter.Recipes.Tests;

/// <summary>
/// Session disposal while a keep-alive is in flight. Through a cluster follower a keep-alive is
/// forwarded to the leader and takes long enough for a resign or a dispose to land in the middle of
/// it (found by the process suite on a 3-member cluster); here a client that holds every keep-alive
/// until it is cancelled makes that the only possible interleaving.
/// </summary>
public sealed class SessionDisposeTests
{
    [Fact]
    public async Task Dispose_during_an_in_flight_keep_alive_stops_quietly_and_revokes_the_lease()
    {
        await using var node = await ArbiterNode.StartAsync(new NodeOptions { FsyncEnabled = false });
        var raw = HeldKeepAlives.Wrap(new EmbeddedArbiterClient(node));
        await using var client = new ArbiterClient(raw);

        var session = await client.CreateSessionAsync(TimeSpan.FromSeconds(3));
        await HeldKeepAlives.Of(raw).InFlight.Task.Within();

        await session.DisposeAsync().AsTask().Within();

        Assert.False(session.IsLost);
        Assert.Equal(-1, await client.TimeToLiveAsync(session.LeaseId));
    }

    /// <summary>Forwards every call to the inner client, except keep-alives: those wait until cancelled.</summary>
    public class HeldKeepAlives : DispatchProxy
    {
        private IArbiterClient? _inner;

        public TaskCompletionSource InFlight { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static IArbiterClient Wrap(IArbiterClient inner)
        {
            var proxy = Create<IArbiterClient, HeldKeepAlives>();
            ((HeldKeepAlives)(object)proxy)._inner = inner;
            return proxy;
        }

        public static HeldKeepAlives Of(IArbiterClient proxy) => (HeldKeepAlives)(object)proxy;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            ArgumentNullException.ThrowIfNull(targetMethod);
            if (targetMethod.Name == nameof(IArbiterClient.LeaseKeepAliveOnceAsync))
            {
                return HoldAsync((CancellationToken)args![1]!);
            }

            return targetMethod.Invoke(_inner, args);
        }

        private async Task<LeaseKeepAliveResponse> HoldAsync(CancellationToken cancellationToken)
        {
            InFlight.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new InvalidOperationException("unreachable");
        }
    }
}
