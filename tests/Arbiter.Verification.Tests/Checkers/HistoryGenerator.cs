using Arbiter.Verification.History;

namespace Arbiter.Verification.Tests.Checkers;

/// <summary>
/// Generates linearizable register histories: concurrent clients whose operations take effect at a
/// random point inside their interval, applied to a real register in that order. Some writes end
/// indeterminate (taking effect or not).
/// </summary>
internal static class HistoryGenerator
{
    public static List<Operation> Generate(int seed, int keys, int opsPerKey, int clients, double infoShare = 0.005)
    {
        var random = new Random(seed);
        var all = new List<Operation>();
        for (var k = 0; k < keys; k++)
        {
            var key = $"k{k}";
            var pending = new List<(long Point, Operation Op)>();
            var clientFree = new long[clients];
            var process = Enumerable.Range(0, clients).ToArray();
            var nextProcess = clients;
            var values = 0;
            for (var i = 0; i < opsPerKey; i++)
            {
                var c = random.Next(clients);
                var invoke = clientFree[c] + random.Next(1, 1_000);
                var point = invoke + random.Next(1, 5_000);
                var complete = point + random.Next(1, 5_000);
                clientFree[c] = complete;
                var roll = random.NextDouble();
                var kind = roll < 0.5 ? OperationKind.Read : roll < 0.8 ? OperationKind.Write : OperationKind.Cas;
                var info = kind != OperationKind.Read && random.NextDouble() < infoShare;
                var op = new Operation { Id = 0, Process = process[c], Kind = kind, Key = key, InvokeNs = invoke, CompleteNs = info ? long.MaxValue : complete, Status = info ? OperationStatus.Info : OperationStatus.Ok, Value = kind == OperationKind.Read ? null : $"{key}-v{++values}" };
                if (info)
                {
                    process[c] = nextProcess++;
                    if (random.Next(2) == 0)
                    {
                        // Never takes effect.
                        point = long.MaxValue;
                    }
                }

                pending.Add((point, op));
            }

            // Apply in linearization order; CAS expects the current value half of the time.
            string? state = null;
            var written = new List<string>();
            foreach (var (point, op) in pending.OrderBy(p => p.Point).ToList())
            {
                var done = op;
                if (point != long.MaxValue)
                {
                    switch (op.Kind)
                    {
                        case OperationKind.Read:
                            done = op with { Value = state };
                            break;
                        case OperationKind.Write:
                            state = op.Value;
                            written.Add(op.Value!);
                            break;
                        case OperationKind.Cas:
                            var expected = random.Next(2) == 0 || written.Count == 0 ? state : written[random.Next(written.Count)];
                            var swapped = expected == state;
                            done = op with { Expected = expected, Succeeded = op.Status == OperationStatus.Ok ? swapped : null };
                            if (swapped)
                            {
                                state = op.Value;
                                written.Add(op.Value!);
                            }

                            break;
                    }
                }
                else if (op.Kind == OperationKind.Cas)
                {
                    done = op with { Expected = state };
                }

                all.Add(done);
            }
        }

        return [.. all.OrderBy(o => o.InvokeNs).Select((o, i) => o with { Id = i })];
    }
}
