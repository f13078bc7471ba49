using System.Buffers;
using System.IO.Pipelines;
using Arbiter.Server.Http2;

namespace Arbiter.Fuzz.Targets;

/// <summary>
/// The cleartext port's protocol selection (<see cref="CleartextProtocolSelection"/>: HTTP/2 with
/// prior knowledge or HTTP/1.1 from the first bytes), fed in chunks; and <see cref="AuthorityNormalizer"/>
/// on the same bytes. Properties: HTTP/2 exactly when the input begins with the whole preface; a
/// normalized authority is a piece of the input with no path, query or fragment.
/// </summary>
public sealed class FirstBytesTarget : FuzzTarget
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    public override string Name => "first-bytes";

    public override int InputBytesMax => 256;

    public override IEnumerable<byte[]> BuiltInSeeds() => Seeds.FirstBytes();

    public override int Run(byte[] input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var pipe = new Pipe(new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        var classified = CleartextProtocolSelection.ClassifyAsync(pipe.Reader, CancellationToken.None);
        var offset = 0;
        var step = 1 + (input.Length % 7);
        while (offset < input.Length && !classified.IsCompleted)
        {
            var chunk = Math.Min(step, input.Length - offset);
            pipe.Writer.Write(input.AsSpan(offset, chunk));
            pipe.Writer.FlushAsync().AsTask().GetAwaiter().GetResult();
            offset += chunk;
        }

        pipe.Writer.Complete();
        var result = classified.GetAwaiter().GetResult();
        var expected = input.AsSpan().StartsWith(Preface) ? CleartextProtocolSelection.FirstBytes.Http2Preface : CleartextProtocolSelection.FirstBytes.Other;
        if (result != expected)
        {
            throw new FuzzFindingException($"classified as {result}, expected {expected}");
        }

        var normalized = AuthorityNormalizer.TryNormalize(input, out var authority);
        if (normalized && (authority.IndexOfAny("/?#"u8) >= 0 || authority.Length > input.Length))
        {
            throw new FuzzFindingException("normalized authority keeps a path, query or fragment");
        }

        return ((int)result * 2) + (normalized ? 1 : 0);
    }
}
