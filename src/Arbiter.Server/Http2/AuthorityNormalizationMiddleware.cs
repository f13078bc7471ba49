using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Arbiter.Server.Http2;

/// <summary>Hooks <see cref="Http2AuthorityRewriter"/> into a Kestrel endpoint.</summary>
internal static class AuthorityNormalizationMiddleware
{
    // Back-pressure towards the socket; HTTP/2 flow control keeps real usage far below.
    private const long PauseWriterThresholdBytes = 1024 * 1024;

    /// <summary>
    /// Rewrites <c>:authority: http://host:port</c> (sent by etcdctl's per-endpoint commands) to
    /// <c>host:port</c> before Kestrel validates it, on every connection of this endpoint.
    /// </summary>
    public static ListenOptions UseAuthorityNormalization(this ListenOptions listen)
    {
        ArgumentNullException.ThrowIfNull(listen);
        listen.Use(next => context => RunAsync(context, next, listen.KestrelServerOptions.Limits.Http2));
        return listen;
    }

    private static async Task RunAsync(ConnectionContext context, ConnectionDelegate next, Http2Limits limits)
    {
        var transport = context.Transport;
        var pipe = new Pipe(new PipeOptions(
            pauseWriterThreshold: PauseWriterThresholdBytes,
            resumeWriterThreshold: PauseWriterThresholdBytes / 2,
            useSynchronizationContext: false));
        using var rewriter = new Http2AuthorityRewriter(limits.MaxFrameSize, limits.HeaderTableSize);
        var pump = PumpAsync(transport.Input, pipe.Writer, rewriter);
        context.Transport = new DuplexPipe(pipe.Reader, transport.Output);
        try
        {
            await next(context).ConfigureAwait(false);
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

    private static async Task PumpAsync(PipeReader input, PipeWriter output, Http2AuthorityRewriter rewriter)
    {
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                if (result.IsCanceled)
                {
                    break;
                }

                var buffer = result.Buffer;
                var consumed = rewriter.Process(buffer, output);
                if (result.IsCompleted)
                {
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
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
