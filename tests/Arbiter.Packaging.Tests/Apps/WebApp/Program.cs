// A fresh `dotnet new web` app with only `dotnet add package Arbiter.Hosting` from the local feed:
// the client from configuration (Arbiter:Endpoints:0), the health check, the DistributedLock
// provider, a leader-only service, and a watch, each reachable over HTTP for LocalFeedInstallTests.
using Arbiter.Client;
using Arbiter.Hosting;
using Arbiter.Recipes;
using Medallion.Threading;

var builder = WebApplication.CreateBuilder(args);
var prefix = builder.Configuration["Prefix"] ?? "web";
builder.AddArbiter();
builder.Services.AddHealthChecks().AddArbiter();
builder.Services.AddLeaderService(prefix + "/election", "web-app", async (services, leadership) =>
{
    await services.GetRequiredService<ArbiterClient>().PutAsync(prefix + "/leader-ran", "yes", cancellationToken: leadership);
    await Task.Delay(Timeout.Infinite, leadership);
});

var app = builder.Build();
app.MapHealthChecks("/health");
app.MapGet("/lock", async (IDistributedLockProvider locks) =>
{
    await using var handle = await locks.AcquireLockAsync(prefix + "/lock", TimeSpan.FromSeconds(30));
    return "ok lock";
});
app.MapGet("/election", async (ArbiterClient client) =>
{
    var leader = await new LeaderElection(client, prefix + "/election").GetLeaderAsync();
    var ran = await client.GetStringAsync(prefix + "/leader-ran");
    return $"ok election leader={leader?.Value} ran={ran}";
});
app.MapGet("/watch", async (ArbiterClient client) =>
{
    using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
    var from = await client.GetRevisionAsync(deadline.Token) + 1;
    var watched = Task.Run(async () =>
    {
        await foreach (var change in client.WatchAsync(prefix + "/watched", new WatchOptions { StartRevision = from }, deadline.Token))
        {
            return change.Value;
        }

        return null;
    });
    await client.PutAsync(prefix + "/watched", "hello from the web app", cancellationToken: deadline.Token);
    return $"ok watch value={await watched}";
});
app.Run();
