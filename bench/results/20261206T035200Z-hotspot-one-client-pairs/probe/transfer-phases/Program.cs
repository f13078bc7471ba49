using System.Diagnostics;
using Arbiter.Client;
using Arbiter.Recipes.Transactions;
using Arbiter.Protocol.Transactions;

var url = args[0]; int seconds = int.Parse(args[1]);
await using var client = ArbiterClient.Connect(url);
await using var txns = new TransactionClient(client, new TransactionClientOptions { SessionTtl = TimeSpan.FromSeconds(30) });
for (int i = 0; i < 8; i++) await client.PutAsync($"acct/{i}", "1000000");
var opts = new TransactionOptions { Mode = TransactionMode.Pessimistic, ImplicitLocks = false };
var rnd = new Random(1);
var starts = new List<double>(); var clock = Stopwatch.StartNew(); var begin = new List<double>(); var commit = new List<double>(); var total = new List<double>(); var body = new List<double>();
async Task One(bool record)
{
    int a = rnd.Next(8), b = (a + 1 + rnd.Next(7)) % 8;
    string ka = $"acct/{a}", kb = $"acct/{b}";
    var o = opts with { Locks = string.CompareOrdinal(ka, kb) < 0 ? [LockTarget.Exclusive(ka), LockTarget.Exclusive(kb)] : [LockTarget.Exclusive(kb), LockTarget.Exclusive(ka)] };
    long t0 = Stopwatch.GetTimestamp();
    await using var t = await txns.BeginTransactionAsync(o);
    long t1 = Stopwatch.GetTimestamp();
    var va = long.Parse((await t.GetAsync(ka))!);
    var vb = long.Parse((await t.GetAsync(kb))!);
    t.Put(ka, (va - 1).ToString()); t.Put(kb, (vb + 1).ToString());
    long t2 = Stopwatch.GetTimestamp();
    await t.CommitAsync();
    long t3 = Stopwatch.GetTimestamp();
    if (record) { starts.Add(clock.Elapsed.TotalMilliseconds); begin.Add(Us(t0, t1)); body.Add(Us(t1, t2)); commit.Add(Us(t2, t3)); total.Add(Us(t0, t3)); }
}
static double Us(long a, long b) => (b - a) * 1e6 / Stopwatch.Frequency;
var w = Stopwatch.StartNew(); while (w.Elapsed.TotalSeconds < 5) await One(false);
int gc0 = GC.CollectionCount(0); long al0 = GC.GetTotalAllocatedBytes(false); var cpu0 = Process.GetCurrentProcess().TotalProcessorTime; var pt0 = GC.GetTotalPauseDuration();
w.Restart(); while (w.Elapsed.TotalSeconds < seconds) await One(true);
Console.WriteLine($"transfers/s={total.Count / w.Elapsed.TotalSeconds:F0} clientGen0={GC.CollectionCount(0) - gc0} allocBytes/transfer={(GC.GetTotalAllocatedBytes(false)-al0)/total.Count} clientCpuUs/transfer={(Process.GetCurrentProcess().TotalProcessorTime-cpu0).TotalMicroseconds/total.Count:F0} pauseMs={(GC.GetTotalPauseDuration()-pt0).TotalMilliseconds:F0}");
void P(string n, List<double> l) { var s = l.OrderBy(x => x).ToArray(); double q(double p) => s[(int)Math.Min(s.Length - 1, s.Length * p)];
    Console.WriteLine($"{n,-7} p50={q(.5):F0} p90={q(.9):F0} p99={q(.99):F0} p99.9={q(.999):F0} mean={s.Average():F0} us"); }
P("begin", begin); P("body", body); P("commit", commit); P("total", total);
// Of the slowest 1 %, which phase took most
var idx = Enumerable.Range(0, total.Count).OrderByDescending(i => total[i]).Take(total.Count / 100).ToList();
Console.WriteLine($"slowest 1%: begin-dominated={idx.Count(i => begin[i] > commit[i])} commit-dominated={idx.Count(i => commit[i] >= begin[i])} meanBegin={idx.Average(i => begin[i]):F0} meanCommit={idx.Average(i => commit[i]):F0}");

var slow = Enumerable.Range(0, total.Count).Where(i => total[i] > 2000).Select(i => starts[i]).ToList();
Console.WriteLine($"slow(>2ms)={slow.Count} of {total.Count}");
var gaps = slow.Zip(slow.Skip(1), (a, b) => b - a).OrderBy(x => x).ToList();
if (gaps.Count > 4) Console.WriteLine($"gap between slow ones ms: p10={gaps[gaps.Count/10]:F1} p50={gaps[gaps.Count/2]:F1} p90={gaps[gaps.Count*9/10]:F1}");
var byBucket = slow.GroupBy(t => (int)(t / 250)).Select(g => g.Count()).OrderByDescending(c => c).Take(10);
Console.WriteLine("slow per 250ms bucket, top: " + string.Join(",", byBucket));
