using Arbiter.Bench;

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
return await BenchCli.RunAsync(args, Console.Out, Console.Error, cancel.Token);
