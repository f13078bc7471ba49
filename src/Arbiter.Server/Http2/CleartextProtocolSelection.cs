using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace Arbiter.Server.Http2;

/// <summary>
/// HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one plain port, as etcd's client port serves
/// gRPC and <c>/metrics</c> side by side (etcd tells them apart with cmux). Kestrel (.NET 10)
/// serves a cleartext <see cref="HttpProtocols.Http1AndHttp2"/> endpoint as HTTP/1.1 only; this
/// connection middleware reads the first bytes and, on the HTTP/2 connection preface (RFC 9113
/// 3.4), tells Kestrel that "h2" was negotiated, as ALPN would have said. It consumes nothing.
/// </summary>
internal static class CleartextProtocolSelection
{
    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    private static readonly byte[] H2 = "h2"u8.ToArray();

    /// <summary>
    /// Serves both protocols on <paramref name="listen"/> (sets <see cref="HttpProtocols.Http1AndHttp2"/>).
    /// Must be the endpoint's first connection middleware. A connection whose first bytes neither
    /// complete the preface nor depart from it within <paramref name="prefaceTimeoutMs"/> (nothing
    /// sent, or a preface trickled in: slowloris) is closed.
    /// </summary>
    public static ListenOptions UseHttp1AndPriorKnowledgeHttp2(this ListenOptions listen, int prefaceTimeoutMs)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(prefaceTimeoutMs);
        ArgumentNullException.ThrowIfNull(listen);
        listen.Protocols = HttpProtocols.Http1AndHttp2;

        // :scheme is "http" on these streams; the feature below makes Kestrel take the transport for TLS.
        listen.KestrelServerOptions.AllowAlternateSchemes = true;
        listen.Use(next => async context =>
        {
            using var firstBytes = CancellationTokenSource.CreateLinkedTokenSource(context.ConnectionClosed);
            firstBytes.CancelAfter(prefaceTimeoutMs);
            var start = await ClassifyAsync(context.Transport.Input, firstBytes.Token).ConfigureAwait(false);
            if (start == FirstBytes.TimedOut)
            {
                // Nothing that tells the protocol apart arrived in time; HTTP/1.1 clients send first.
                context.Abort(new ConnectionAbortedException("The connection's first bytes did not arrive within the request header timeout."));
                return;
            }

            if (start == FirstBytes.Http2Preface)
            {
                var negotiated = new NegotiatedHttp2();
                context.Features.Set<ITlsApplicationProtocolFeature>(negotiated);
                context.Features.Set<ITlsConnectionFeature>(negotiated);
            }

            await next(context).ConfigureAwait(false);
        });
        return listen;
    }

    /// <summary>What a connection's first bytes turned out to be.</summary>
    internal enum FirstBytes
    {
        /// <summary>The whole HTTP/2 connection preface.</summary>
        Http2Preface,

        /// <summary>Bytes that are not the preface (HTTP/1.1), or the client closed first.</summary>
        Other,

        /// <summary>Neither within the timeout.</summary>
        TimedOut,
    }

    /// <summary>Reads until the bytes match the preface or differ from it; consumes nothing.</summary>
    internal static async Task<FirstBytes> ClassifyAsync(PipeReader input, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                var (count, matches) = Compare(buffer);
                if (!matches || count == Preface.Length || result.IsCompleted || result.IsCanceled)
                {
                    input.AdvanceTo(buffer.Start);
                    return matches && count == Preface.Length ? FirstBytes.Http2Preface : FirstBytes.Other;
                }

                // A prefix of the preface so far: wait for more.
                input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (OperationCanceledException)
        {
            return FirstBytes.TimedOut;
        }
    }

    /// <summary>How many bytes of the preface the buffer holds, and whether they match it.</summary>
    private static (int Count, bool Matches) Compare(in ReadOnlySequence<byte> buffer)
    {
        var count = (int)Math.Min(buffer.Length, Preface.Length);
        Span<byte> head = stackalloc byte[24];
        buffer.Slice(0, count).CopyTo(head);
        return (count, head[..count].SequenceEqual(Preface[..count]));
    }

    /// <summary>What Kestrel reads to choose HTTP/2: an "h2" application protocol on a (nominally) secure transport.</summary>
    private sealed class NegotiatedHttp2 : ITlsApplicationProtocolFeature, ITlsConnectionFeature
    {
        public ReadOnlyMemory<byte> ApplicationProtocol => H2;

        public X509Certificate2? ClientCertificate
        {
            get => null;
            set { }
        }

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);
    }
}
