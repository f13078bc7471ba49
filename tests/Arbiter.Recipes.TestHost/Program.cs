using System.Globalization;
using Arbiter.Client;
using Arbiter.Recipes;

// Usage (one line of stdout per fact the test waits on):
//   mutex-increment <endpoint> <lock> <counterKey> <iterations> <ttlSeconds>
//   hold <endpoint> <mutex|semaphore:N> <name> <ttlSeconds>   (holds until stdin closes, then tries a fenced write)
//   campaign <endpoint> <election> <id> <holdMs>
var command = args[0];
var endpoint = args[1];
await using var client = ArbiterClient.Connect(endpoint);
var invariant = CultureInfo.InvariantCulture;
switch (command)
{
    case "mutex-increment":
        {
            var mutex = new DistributedMutex(client, args[2], new RecipeOptions { SessionTtlSeconds = int.Parse(args[5], invariant) });
            var counterKey = args[3];
            var iterations = int.Parse(args[4], invariant);
            for (var i = 0; i < iterations; i++)
            {
                await using var handle = await mutex.AcquireAsync(TimeSpan.FromSeconds(60));

                // Deliberately a plain read then a plain write: only the mutex prevents lost updates.
                var value = await client.GetStringAsync(counterKey);
                var next = (value == null ? 0 : long.Parse(value, invariant)) + 1;
                await client.PutAsync(counterKey, next.ToString(invariant));
            }

            Console.WriteLine("DONE");
            return 0;
        }

    case "hold":
        {
            var options = new RecipeOptions { SessionTtlSeconds = int.Parse(args[4], invariant) };
            var kind = args[2];
            DistributedLockHandle handle = kind.StartsWith("semaphore:", StringComparison.Ordinal)
                ? await new DistributedSemaphore(client, args[3], int.Parse(kind["semaphore:".Length..], invariant), options).AcquireAsync(TimeSpan.FromSeconds(60))
                : await new DistributedMutex(client, args[3], options).AcquireAsync(TimeSpan.FromSeconds(60));
            Console.WriteLine($"ACQUIRED {handle.FencingToken} {handle.Key}");
            await Console.In.ReadToEndAsync();
            var accepted = await handle.FencedPutAsync(args[3] + "-data", "written-by-" + Environment.ProcessId);
            Console.WriteLine(accepted ? "FENCED accepted" : "FENCED rejected");
            Console.WriteLine($"LOST {handle.HandleLostToken.IsCancellationRequested}");
            return 0;
        }

    case "campaign":
        {
            var election = new LeaderElection(client, args[2], new RecipeOptions { SessionTtlSeconds = 5 });
            var id = args[3];
            await using var leadership = await election.CampaignAsync(id, TimeSpan.FromSeconds(60));

            // While leader, claim the "active" marker under our term's guard; nobody else may change it during our term.
            await client.Txn().If(leadership.Guard).Then(Op.Put(args[2] + "-active", id)).CommitAsync();
            Console.WriteLine($"LEADER {id} {leadership.Revision}");
            await Task.Delay(int.Parse(args[4], invariant));
            var active = await client.GetStringAsync(args[2] + "-active");
            Console.WriteLine(active == id && leadership.IsLeader ? "TERM ok" : $"TERM overlap active={active}");
            await leadership.ResignAsync();
            Console.WriteLine("RESIGNED");
            return 0;
        }

    default:
        Console.Error.WriteLine($"unknown command {command}");
        return 2;
}
