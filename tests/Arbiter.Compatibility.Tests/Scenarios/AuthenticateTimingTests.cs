using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Protocol.Etcd;
using Grpc.Core;
using Grpc.Net.Client;

namespace Arbiter.Compatibility.Tests.Scenarios;

/// <summary>
/// Authenticate gives no timing oracle worth exploiting: an unknown user name costs the same bcrypt
/// work as a wrong password (a dummy hash of the configured cost), so how long the refusal takes does
/// not tell whether the name exists. On a real <c>arbiter serve</c> with <c>--bcrypt-cost 12</c>
/// (a quarter of a second or more per check), a fast path for unknown names would answer in
/// milliseconds; the test wants the unknown name's median at least a third of the wrong password's.
/// Runs alone (its bcrypt work takes both cores for half a minute and would slow clusters started beside it).
/// </summary>
[Collection(AuthenticateTimingCollection.Name)]
public sealed class AuthenticateTimingTests(ITestOutputHelper output)
{
    private const int Samples = 7;

    [Fact]
    public async Task AnUnknownNameTakesAsLongAsAWrongPassword()
    {
        await using var server = new ArbiterProcess("arbiter-auth-timing", ["--in-memory", "--bcrypt-cost", "12"]);
        await server.StartAsync();
        using var channel = GrpcChannel.ForAddress(server.Endpoint);
        var auth = new Auth.AuthClient(channel);
        var deadline = TimeSpan.FromSeconds(60);
        await auth.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "right" }, deadline: DateTime.UtcNow + deadline);
        await auth.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" }, deadline: DateTime.UtcNow + deadline);
        await auth.AuthEnableAsync(new AuthEnableRequest(), deadline: DateTime.UtcNow + deadline);

        // Interleaved, so that a change in the machine's load affects both kinds alike.
        var wrongPassword = new List<double>();
        var unknownName = new List<double>();
        for (var i = 0; i < Samples; i++)
        {
            wrongPassword.Add(await RefusalMsAsync(auth, "root", "wrong", deadline));
            unknownName.Add(await RefusalMsAsync(auth, $"nobody-{i}", "wrong", deadline));
        }

        var wrongMedian = Median(wrongPassword);
        var unknownMedian = Median(unknownName);
        output.WriteLine($"Authenticate refusals, median of {Samples}: wrong password {wrongMedian:F0} ms [{string.Join(", ", wrongPassword.Select(v => v.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}], " +
            $"unknown name {unknownMedian:F0} ms [{string.Join(", ", unknownName.Select(v => v.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}]");
        Assert.True(unknownMedian >= wrongMedian / 3, $"an unknown name is refused in {unknownMedian:F0} ms, a wrong password in {wrongMedian:F0} ms: the difference tells which names exist");
    }

    private static async Task<double> RefusalMsAsync(Auth.AuthClient auth, string name, string password, TimeSpan deadline)
    {
        var started = Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<RpcException>(() => auth.AuthenticateAsync(new AuthenticateRequest { Name = name, Password = password }, deadline: DateTime.UtcNow + deadline).ResponseAsync);
        var elapsedMs = started.Elapsed.TotalMilliseconds;
        Assert.Equal("etcdserver: authentication failed, invalid user ID or password", refused.Status.Detail);
        return elapsedMs;
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}

/// <summary>Tests that must not run beside others: xunit runs a collection without parallelization on its own.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AuthenticateTimingCollection
{
    public const string Name = "authenticate-timing";
}
