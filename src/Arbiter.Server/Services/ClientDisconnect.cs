using Microsoft.AspNetCore.Connections;

namespace Arbiter.Server.Services;

/// <summary>Tells a client that went away from a failure worth logging, on a streaming call.</summary>
internal static class ClientDisconnect
{
    /// <summary>
    /// Whether <paramref name="exception"/>, thrown reading a request stream, only says the client
    /// went away: the call was cancelled, or Kestrel reports the client's connection aborted
    /// (<c>The request stream was aborted</c> over <c>The HTTP/2 connection faulted</c>), which it
    /// can do before it cancels the call's token.
    /// </summary>
    public static bool IsClientGone(IOException exception, CancellationToken callToken) =>
        callToken.IsCancellationRequested || exception.InnerException is ConnectionAbortedException;
}
