using Arbiter.Node;
using Arbiter.Protocol.Etcd;
using Arbiter.Server.Dashboard;
using Grpc.Core;

namespace Arbiter.Server.Services;

/// <summary>etcdserverpb.Watch: one node watch stream per gRPC stream.</summary>
public sealed class WatchService(ArbiterNode node, ServerShutdown shutdown, WatchStreamRegistry registry) : Watch.WatchBase
{
    /// <inheritdoc />
    public override async Task Watch(IAsyncStreamReader<WatchRequest> requestStream, IServerStreamWriter<WatchResponse> responseStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(responseStream);
        using var lifetime = shutdown.Link(context);
        var token = lifetime.Token;

        // A stream that names a consistency level starts once this member may serve it (a watch
        // from "now" then starts at or after the session's revision); etcd's watches name none.
        if (ConsistencyHeaders.Of(context) is { } consistency)
        {
            await node.PrepareReadAsync(consistency, serializableFlag: false, token).ConfigureAwait(false);
        }

        var stream = node.OpenWatchStream();
        using var registration = registry.Register(stream, context.Peer);
        var sending = SendAsync(stream, responseStream, token);
        try
        {
            await foreach (var request in requestStream.ReadAllAsync(token).ConfigureAwait(false))
            {
                // A client that does not read its responses is not read either (bounded memory).
                await stream.WaitWhileBackloggedAsync(token).ConfigureAwait(false);
                switch (request.RequestUnionCase)
                {
                    case WatchRequest.RequestUnionOneofCase.CreateRequest:
                        stream.Create(request.CreateRequest);
                        break;
                    case WatchRequest.RequestUnionOneofCase.CancelRequest:
                        stream.Cancel(request.CancelRequest.WatchId);
                        break;
                    case WatchRequest.RequestUnionOneofCase.ProgressRequest:
                        stream.RequestProgress();
                        break;
                    default:
                        // etcd ignores unknown request kinds.
                        break;
                }
            }

            // The client closed its side: like etcd, the stream ends.
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (IOException e) when (ClientDisconnect.IsClientGone(e, token))
        {
        }
        finally
        {
            // Completing the stream lets the sender drain and stop before the call ends.
            await stream.DisposeAsync().ConfigureAwait(false);
            await sending.ConfigureAwait(false);
        }

        shutdown.ThrowIfStopping();
    }

    private static async Task SendAsync(Arbiter.Node.Watch.WatchStream stream, IServerStreamWriter<WatchResponse> responseStream, CancellationToken token)
    {
        try
        {
            await foreach (var response in stream.ReadAllAsync(token).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(response, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (InvalidOperationException) when (token.IsCancellationRequested)
        {
            // Writing after the call completed.
        }
    }
}
