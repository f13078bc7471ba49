using Arbiter.Core;

namespace Arbiter.Server.Services;

/// <summary>
/// etcd's v3lock and v3election servers reach the key-value store through an in-process clientv3,
/// which turns etcd's errors into plain Go errors: their clients get them with code Unknown and
/// the same text (a lock on a lease that does not exist: <c>Unknown "etcdserver: requested lease
/// not found"</c>, not NotFound). The lock and election services answer the same way.
/// </summary>
internal static class RecipeErrors
{
    /// <summary>Awaits <paramref name="call"/>, an etcd error from it re-thrown with code Unknown.</summary>
    public static async Task<T> AsClientErrorsAsync<T>(Task<T> call)
    {
        try
        {
            return await call.ConfigureAwait(false);
        }
        catch (EtcdException e) when (e.Error.StatusCode != ErrorStatusCode.Unknown && e.Error.Transaction is null)
        {
            throw new EtcdException(new EtcdError(ErrorStatusCode.Unknown, e.Error.Message));
        }
    }
}
