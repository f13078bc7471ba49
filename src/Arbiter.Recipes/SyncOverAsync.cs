namespace Arbiter.Recipes;

/// <summary>
/// The synchronous overloads DistributedLock's interfaces have: the asynchronous call run on the
/// thread pool and waited for, so a caller's synchronization context (UI, old ASP.NET) cannot
/// deadlock it.
/// </summary>
internal static class SyncOverAsync
{
    public static T Run<T>(Func<Task<T>> call) => Task.Run(call).GetAwaiter().GetResult();

    public static void Run(Func<Task> call) => Task.Run(call).GetAwaiter().GetResult();
}
