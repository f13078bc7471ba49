namespace Arbiter.Server.Tests.Infrastructure;

/// <summary>Waits for a condition with a deadline (never a fixed sleep that hopes).</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan deadline, string what)
    {
        var until = DateTime.UtcNow + deadline;
        while (true)
        {
            if (await condition().ConfigureAwait(false))
            {
                return;
            }

            if (DateTime.UtcNow > until)
            {
                throw new TimeoutException($"Timed out after {deadline.TotalSeconds:F1}s waiting for: {what}");
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }
}
