using System.Collections.Concurrent;
using System.Net;
using Google.Protobuf;

namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>A span as OTLP carries it (ids in lower-case hex, empty when absent).</summary>
public sealed record OtlpSpan(string Name, string TraceId, string SpanId, string ParentSpanId, IReadOnlyDictionary<string, string> Attributes);

/// <summary>An OTLP/HTTP receiver: POST /v1/traces and /v1/metrics with protobuf bodies, decoded field by field.</summary>
public sealed class OtlpCollector : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly ConcurrentQueue<OtlpSpan> _spans = new();
    private readonly ConcurrentDictionary<string, bool> _metrics = new(StringComparer.Ordinal);
    private readonly Task _loop;

    public OtlpCollector()
    {
        var port = PortAllocator.FreePort();
        Url = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Url + "/");
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    public string Url { get; }

    /// <summary>Every span received so far.</summary>
    public IReadOnlyList<OtlpSpan> Spans => [.. _spans];

    public async Task<OtlpSpan> WaitForSpanAsync(Func<OtlpSpan, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_spans.FirstOrDefault(match) is { } span)
            {
                return span;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"no matching span within {timeout}; received: {string.Join(", ", _spans.Select(s => s.Name))}");
    }

    public async Task WaitForMetricAsync(string name, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!_metrics.ContainsKey(name))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"metric {name} not pushed within {timeout}; received: {string.Join(", ", _metrics.Keys.Order())}");
            }

            await Task.Delay(50);
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The listener was stopped under the pending accept.
        }
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var bytes = body.ToArray();
            switch (context.Request.Url?.AbsolutePath)
            {
                case "/v1/traces":
                    // ExportTraceServiceRequest.resource_spans(1) → scope_spans(2) → spans(2).
                    foreach (var resource in Fields(bytes, 1))
                    {
                        foreach (var scope in Fields(resource, 2))
                        {
                            foreach (var span in Fields(scope, 2))
                            {
                                _spans.Enqueue(ParseSpan(span));
                            }
                        }
                    }

                    break;
                case "/v1/metrics":
                    // ExportMetricsServiceRequest.resource_metrics(1) → scope_metrics(2) → metrics(2) → name(1).
                    foreach (var resource in Fields(bytes, 1))
                    {
                        foreach (var scope in Fields(resource, 2))
                        {
                            foreach (var metric in Fields(scope, 2))
                            {
                                _metrics[System.Text.Encoding.UTF8.GetString(Fields(metric, 1).First())] = true;
                            }
                        }
                    }

                    break;
            }

            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/x-protobuf";
            context.Response.Close();
        }
    }

    /// <summary>Span: trace_id 1, span_id 2, parent_span_id 4, name 5, attributes 9 (KeyValue: key 1, value 2 → AnyValue.string_value 1).</summary>
    private static OtlpSpan ParseSpan(byte[] span)
    {
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var attribute in Fields(span, 9))
        {
            var key = System.Text.Encoding.UTF8.GetString(Fields(attribute, 1).First());
            var value = Fields(attribute, 2).FirstOrDefault() is { } any && Fields(any, 1).FirstOrDefault() is { } text
                ? System.Text.Encoding.UTF8.GetString(text)
                : "(not a string)";
            attributes[key] = value;
        }

        string Hex(int field) => Fields(span, field).FirstOrDefault() is { } id ? Convert.ToHexStringLower(id) : string.Empty;
        return new OtlpSpan(System.Text.Encoding.UTF8.GetString(Fields(span, 5).First()), Hex(1), Hex(2), Hex(4), attributes);
    }

    /// <summary>The length-delimited occurrences of <paramref name="field"/> in a protobuf message (other fields skipped).</summary>
    private static List<byte[]> Fields(byte[] message, int field)
    {
        var found = new List<byte[]>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == field && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                found.Add(input.ReadBytes().ToByteArray());
            }
            else
            {
                input.SkipLastField();
            }
        }

        return found;
    }
}
