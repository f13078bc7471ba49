// A fresh `dotnet new console` app with only `dotnet add package Arbiter.Recipes` from the local feed:
// a lock, an election and a watch against the server whose endpoint is the first argument.
// Copied over the template's Program.cs by LocalFeedInstallTests; it prints one "ok ..." line per step.
using Arbiter.Client;
using Arbiter.Recipes;

var endpoint = args[0];
var prefix = args[1];
using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
await using var client = ArbiterClient.Connect(endpoint);

await using (var held = await new DistributedMutex(client, prefix + "/lock").AcquireAsync(TimeSpan.FromSeconds(30), deadline.Token))
{
    Console.WriteLine($"ok lock fencing-token={held.FencingToken}");
}

var election = new LeaderElection(client, prefix + "/election");
await using (var leadership = await election.CampaignAsync("console-app", TimeSpan.FromSeconds(30), deadline.Token))
{
    var leader = await election.GetLeaderAsync(deadline.Token);
    Console.WriteLine($"ok election leader={leader?.Value} revision={leadership.Revision}");
}

// Watch from the next revision, so the put below is seen however the two race.
var from = await client.GetRevisionAsync(deadline.Token) + 1;
var watched = Task.Run(async () =>
{
    await foreach (var change in client.WatchAsync(prefix + "/watched", new WatchOptions { StartRevision = from }, deadline.Token))
    {
        return change.Value;
    }

    return null;
});
await client.PutAsync(prefix + "/watched", "hello from the console app", cancellationToken: deadline.Token);
Console.WriteLine($"ok watch value={await watched}");
