using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Arbiter.Server.Http2;

/// <summary>
/// Hooks <see cref="Http2AuthorityRewriter"/> into a Kestrel endpoint, and closes a connection the
/// client half-closed with a FIN rather than a reset (see <see cref="HalfClosedConnection"/>).
/// </summary>
internal static class AuthorityNormalizationMiddleware
{
    // Back-pressure towards the socket; HTTP/2 flow control keeps real usage far below.
    private const long PauseWriterThresholdBytes = 1024 * 1024;

    /// <summary>
    /// After a client half-closed, how long Kestrel's abort is held back so that the connection
    /// ends with a FIN once Kestrel has finished with it; past this, the abort (a reset) goes ahead.
    /// </summary>
    private const int HalfClosedAbortGraceMs = 5_000;

    /// <summary>
    /// Rewrites <c>:authority: http://host:port</c> (sent by etcdctl's per-endpoint commands) to
    /// <c>host:port</c> before Kestrel validates it, on every connection of this endpoint; and
    /// closes a connection whose client, once it has begun the preface, a frame or a header block,
    /// leaves it unfinished for <paramref name="frameTimeoutMs"/> of waiting (slowloris). Only time
    /// spent waiting for the client counts, not time the server is slow to take what was sent.
    /// </summary>
    public static ListenOptions UseAuthorityNormalization(this ListenOptions listen, int frameTimeoutMs)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameTimeoutMs);
        listen.Use(next => context => RunAsync(context, next, listen.KestrelServerOptions.Limits.Http2, frameTimeoutMs));
        return listen;
    }

    private static async Task RunAsync(ConnectionContext context, ConnectionDelegate next, Http2Limits limits, int frameTimeoutMs)
    {
        var transport = context.Transport;
        var pipe = new Pipe(new PipeOptions(
            pauseWriterThreshold: PauseWriterThresholdBytes,
            resumeWriterThreshold: PauseWriterThresholdBytes / 2,
            useSynchronizationContext: false));
        using var rewriter = new Http2AuthorityRewriter(limits.MaxFrameSize, limits.HeaderTableSize);
        await using var connection = new HalfClosedConnection(context, HalfClosedAbortGraceMs);
        var pump = PumpAsync(transport.Input, pipe.Writer, rewriter, connection, frameTimeoutMs);
        context.Transport = new DuplexPipe(pipe.Reader, transport.Output);
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            context.Transport = transport;
            await pipe.Reader.CompleteAsync().ConfigureAwait(false);
            transport.Input.CancelPendingRead();
            await pump.ConfigureAwait(false);

            // What Kestrel's HTTP/2 layer would have done to the transport it read.
            await transport.Input.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static async Task PumpAsync(PipeReader input, PipeWriter output, Http2AuthorityRewriter rewriter, HalfClosedConnection connection, int frameTimeoutMs)
    {
        var frameTimer = new CancellationTokenSource();
        try
        {
            var midFrame = false;
            var midFrameWaitedMs = 0L;
            while (true)
            {
                ReadResult result;
                if (midFrame)
                {
                    var remainingMs = frameTimeoutMs - midFrameWaitedMs;
                    var started = Stopwatch.GetTimestamp();
                    frameTimer.CancelAfter(TimeSpan.FromMilliseconds(Math.Max(1, remainingMs)));
                    try
                    {
                        result = await input.ReadAsync(frameTimer.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (frameTimer.IsCancellationRequested)
                    {
                        var timedOut = new ConnectionAbortedException($"The client left an HTTP/2 frame or header block unfinished for {frameTimeoutMs} ms (request header timeout).");
                        connection.Abort(timedOut);
                        await output.CompleteAsync(timedOut).ConfigureAwait(false);
                        return;
                    }

                    midFrameWaitedMs += (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    if (!frameTimer.TryReset())
                    {
                        frameTimer.Dispose();
                        frameTimer = new CancellationTokenSource();
                    }
                }
                else
                {
                    result = await input.ReadAsync().ConfigureAwait(false);
                }

                if (result.IsCanceled)
                {
                    break;
                }

                var buffer = result.Buffer;
                var consumed = rewriter.Process(buffer, output);
                midFrame = rewriter.MidFrame || (!rewriter.PassingThrough && !consumed.Equals(buffer.End));
                if (!midFrame)
                {
                    midFrameWaitedMs = 0;
                }

                if (result.IsCompleted)
                {
                    // The client sent its FIN (a half-close, or the end of the connection).
                    connection.ClientFinished();
                    rewriter.FlushRemainder(buffer.Slice(consumed), output);
                    input.AdvanceTo(buffer.End);
                    await output.FlushAsync().ConfigureAwait(false);
                    break;
                }

                input.AdvanceTo(consumed, buffer.End);
                var flush = await output.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }

            await output.CompleteAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Any failure ends this connection only; Kestrel sees it as a transport error.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            await output.CompleteAsync(ex).ConfigureAwait(false);
        }
        finally
        {
            frameTimer.Dispose();
        }
    }

    /// <summary>
    /// The connection as Kestrel's HTTP layer sees it. When a client half-closes (shutdown(SHUT_WR))
    /// while a stream is open (a watch, a lease keep-alive), Kestrel's HTTP/2 layer aborts the
    /// connection, and Kestrel's socket transport closes an aborted socket abortively (SO_LINGER 0):
    /// the client gets a reset (ECONNRESET) where etcd (Go) closes with a FIN. Once the client's FIN
    /// has been read, this holds such an abort back: Kestrel still ends every stream, finishes, and
    /// disposes the transport, which then flushes what is left and closes with a FIN. If Kestrel
    /// does not finish within the grace period, the abort goes through after all.
    /// </summary>
    private sealed class HalfClosedConnection(ConnectionContext inner, int graceMs) : ConnectionContext
    {
        private readonly CancellationTokenSource _grace = new();
        private int _clientFinished;
        private int _abortDeferred;

        public override string ConnectionId
        {
            get => inner.ConnectionId;
            set => inner.ConnectionId = value;
        }

        public override IFeatureCollection Features => inner.Features;

        public override IDictionary<object, object?> Items
        {
            get => inner.Items;
            set => inner.Items = value;
        }

        public override IDuplexPipe Transport
        {
            get => inner.Transport;
            set => inner.Transport = value;
        }

        public override CancellationToken ConnectionClosed
        {
            get => inner.ConnectionClosed;
            set => inner.ConnectionClosed = value;
        }

        public override EndPoint? LocalEndPoint
        {
            get => inner.LocalEndPoint;
            set => inner.LocalEndPoint = value;
        }

        public override EndPoint? RemoteEndPoint
        {
            get => inner.RemoteEndPoint;
            set => inner.RemoteEndPoint = value;
        }

        /// <summary>Called once the client's FIN has been read.</summary>
        public void ClientFinished() => Volatile.Write(ref _clientFinished, 1);

        public override void Abort(ConnectionAbortedException abortReason)
        {
            if (Volatile.Read(ref _clientFinished) == 0)
            {
                inner.Abort(abortReason);
                return;
            }

            if (Interlocked.Exchange(ref _abortDeferred, 1) == 0)
            {
                _grace.Token.UnsafeRegister(static (state, _) => ((ConnectionContext)state!).Abort(new ConnectionAbortedException("The client half-closed and the connection did not finish in time.")), inner);
                _grace.CancelAfter(graceMs);
            }
        }

        public override void Abort() => Abort(new ConnectionAbortedException("The connection was aborted by the application."));

        public override ValueTask DisposeAsync()
        {
            // Only the grace timer: the transport itself belongs to Kestrel, which disposes it.
            _grace.Dispose();
            return base.DisposeAsync();
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
