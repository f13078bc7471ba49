using System.Globalization;
using Arbiter.Client;
using Arbiter.Recipes;
using Arbiter.Recipes.Transactions;

// Usage (one line of stdout per fact the test waits on):
//   mutex-increment <endpoint> <lock> <counterKey> <iterations> <ttlSeconds>
//   hold <endpoint> <mutex|semaphore:N> <name> <ttlSeconds>   (holds until stdin closes, then tries a fenced write)
//   campaign <endpoint> <election> <id> <holdMs>
//   bank <endpoint[,endpoint…]> <prefix> <accounts> <transfers> <worker> <seed> <pessimistic|optimistic>
//        (each transfer locks both accounts in random order, so transfers deadlock; records "<from>:<to>:<amount>"
//        under <prefix>log/<worker>-<i> in the same commit and skips a transfer whose record exists, so a
//        transfer whose outcome was unknown (leader lost, call cut) is redone safely; prints PROGRESS <i> at <s> every
//        5 transfers and DONE <commits> <retries> <deadlocks> <unknown outcomes> <found already applied>)
//   txn-hold <endpoint> <key> <ttlSeconds>   (locks key X, prints LOCKED <token>; on stdin close commits a write and prints COMMIT …)
var command = args[0];
var endpoint = args[1];
await using var client = ArbiterClient.Connect(endpoint.Split(','));
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

    case "bank":
        {
            var prefix = args[2];
            var accounts = int.Parse(args[3], invariant);
            var transfers = int.Parse(args[4], invariant);
            var worker = args[5];
            var random = new Random(int.Parse(args[6], invariant));
            var mode = args[7] == "optimistic" ? TransactionMode.Optimistic : TransactionMode.Pessimistic;
            await using var txns = new TransactionClient(client, new TransactionClientOptions { SessionTtl = TimeSpan.FromSeconds(10) });
            var policy = RetryPolicy.Default with { MaxAttempts = 200, BudgetCapacity = 100_000 };

            // Bounded, so that a transaction orphaned by a leader loss (its rollback lost too) cannot
            // hold its locks for the server's 60 s default.
            var options = new TransactionOptions { Mode = mode, TimeLimit = TimeSpan.FromSeconds(15), LockTimeout = TimeSpan.FromSeconds(10) };
            long unknown = 0, already = 0;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (var i = 0; i < transfers; i++)
            {
                var from = random.Next(accounts);
                var to = (from + 1 + random.Next(accounts - 1)) % accounts;
                var amount = random.Next(1, 50);
                var logKey = $"{prefix}log/{worker}-{i}";
                for (var attempt = 1; ; attempt++)
                {
                    try
                    {
                        var applied = await txns.RunTransactionAsync(
                            async (t, ct) =>
                            {
                                if (mode == TransactionMode.Pessimistic)
                                {
                                    // Lock in the transfer's direction, not a global order: A→B and B→A deadlock.
                                    await t.LockExclusiveAsync($"{prefix}acct/{from}", cancellationToken: ct);
                                    await Task.Delay(3, ct);   // widen the window in which opposite transfers deadlock
                                    await t.LockExclusiveAsync($"{prefix}acct/{to}", cancellationToken: ct);
                                    await t.LockExclusiveAsync(logKey, cancellationToken: ct);
                                }

                                var a = long.Parse(await t.GetAsync($"{prefix}acct/{from}", ct) ?? "0", invariant);
                                var b = long.Parse(await t.GetAsync($"{prefix}acct/{to}", ct) ?? "0", invariant);
                                if (await t.GetAsync(logKey, ct) is not null)
                                {
                                    return false;   // applied by an earlier attempt whose outcome we did not learn
                                }

                                t.Put($"{prefix}acct/{from}", (a - amount).ToString(invariant));
                                t.Put($"{prefix}acct/{to}", (b + amount).ToString(invariant));
                                t.Put(logKey, $"{from}:{to}:{amount}");
                                return true;
                            },
                            policy,
                            options);
                        if (!applied)
                        {
                            already++;
                        }

                        break;
                    }
                    catch (Exception e) when (attempt < 100 && IsUnknownOutcome(e))
                    {
                        // Outcome unknown (the leader died under a call, no leader yet): redo the transfer;
                        // its log record says whether the first try applied.
                        unknown++;
                        Console.Error.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s: transfer {i} attempt {attempt}: unknown outcome: {e.GetType().Name} {e.Message}");
                        await Task.Delay(100 + random.Next(200));
                    }
                }

                if ((i + 1) % 5 == 0)
                {
                    Console.WriteLine($"PROGRESS {i + 1} at {clock.Elapsed.TotalSeconds:F1} s");
                }
            }

            var m = txns.Metrics;
            Console.WriteLine($"DONE {m.Commits} {m.Retries} {m.Deadlocks} {unknown} {already}");
            return 0;
        }

    case "txn-hold":
        {
            await using var txns = new TransactionClient(client, new TransactionClientOptions { SessionTtl = TimeSpan.FromSeconds(int.Parse(args[3], invariant)) });
            var txn = await txns.BeginTransactionAsync();
            var token = await txn.LockExclusiveAsync(args[2]);
            Console.WriteLine($"LOCKED {token} {txn.Id}");
            await Console.In.ReadToEndAsync();
            txn.Put(args[2], "written-by-" + Environment.ProcessId);
            try
            {
                var revision = await txn.CommitAsync();
                Console.WriteLine($"COMMIT ok {revision}");
            }
            catch (TransactionException e)
            {
                Console.WriteLine($"COMMIT failed {e.GetType().Name} {e.Message}");
            }

            return 0;
        }

    default:
        Console.Error.WriteLine($"unknown command {command}");
        return 2;
}

static bool IsUnknownOutcome(Exception e) => e switch
{
    Grpc.Core.RpcException r => r.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded
        or Grpc.Core.StatusCode.Unknown or Grpc.Core.StatusCode.Internal or Grpc.Core.StatusCode.Cancelled,
    OperationCanceledException or TimeoutException => true,
    _ => false,
};
