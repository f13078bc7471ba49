using Google.Api;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Http;

namespace Arbiter.Server.Gateway;

/// <summary>
/// One gRPC method served at its <c>google.api.http</c> paths: the request body is parsed into
/// the request message(s), the call goes through the same interceptors and service implementation
/// as a gRPC call, and the response is written as etcd's gateway writes it.
/// </summary>
internal abstract class GatewayRoute(MethodDescriptor descriptor, string fullName)
{
    /// <summary>Responses as etcd's gateway writes them: proto field names, defaults omitted, int64 as strings, bytes as base64.</summary>
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true));

    /// <summary>A message as etcd's gateway writes it (compact).</summary>
    protected static string Format(IMessage message) => GatewayJson.Compact(Formatter.Format(message));

    /// <summary>The method's descriptor (request type, annotations).</summary>
    public MethodDescriptor Descriptor { get; } = descriptor;

    /// <summary>The gRPC method name, <c>/package.Service/Method</c>.</summary>
    public string FullName { get; } = fullName;

    /// <summary>The POST paths of the method's <c>google.api.http</c> rule and its additional bindings.</summary>
    public IEnumerable<string> Paths => PathsOf(Descriptor);

    /// <summary>The POST paths of <paramref name="method"/>'s <c>google.api.http</c> rule and its additional bindings.</summary>
    public static IEnumerable<string> PathsOf(MethodDescriptor method)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (method.GetOptions()?.GetExtension(AnnotationsExtensions.Http) is not { } rule)
        {
            yield break;
        }

        foreach (var binding in rule.AdditionalBindings.Prepend(rule))
        {
            if (binding.PatternCase == HttpRule.PatternOneofCase.Post)
            {
                yield return binding.Post;
            }
        }
    }

    /// <summary>Serves one request whose body has been read.</summary>
    public abstract Task HandleAsync(HttpContext http, ReadOnlyMemory<byte> body);

    /// <summary>Writes a unary call's error as etcd's gateway does.</summary>
    protected static async Task WriteErrorAsync(HttpResponse response, Status status)
    {
        response.StatusCode = GatewayJson.HttpStatusOf(status.StatusCode);
        response.ContentType = "application/json";
        await response.WriteAsync(GatewayJson.ErrorBody(status), response.HttpContext.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The status a client sees for an exception (Grpc.AspNetCore's text for an unexpected one).</summary>
    protected static Status StatusOf(Exception e) => e switch
    {
        RpcException rpc => rpc.Status,
        OperationCanceledException => new Status(StatusCode.Cancelled, "Call canceled by the client."),
        _ => new Status(StatusCode.Unknown, "Exception was thrown by handler."),
    };

    /// <summary>A unary method.</summary>
    public sealed class Unary<TRequest, TResponse>(MethodDescriptor descriptor, string fullName, UnaryServerMethod<TRequest, TResponse> call) : GatewayRoute(descriptor, fullName)
        where TRequest : class
        where TResponse : class
    {
        /// <inheritdoc />
        public override async Task HandleAsync(HttpContext http, ReadOnlyMemory<byte> body)
        {
            var context = new GatewayCallContext(http, FullName);
            try
            {
                var request = (TRequest)GatewayBody.ParseOne(body, Descriptor.InputType);
                var response = await call(request, context).ConfigureAwait(false);
                http.Response.StatusCode = StatusCodes.Status200OK;
                http.Response.ContentType = "application/json";
                var json = System.Text.Encoding.UTF8.GetBytes(Format((IMessage)response));
                http.Response.ContentLength = json.Length;
                await http.Response.Body.WriteAsync(json, http.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception e) when (!http.Response.HasStarted && !(e is OperationCanceledException && http.RequestAborted.IsCancellationRequested))
            {
                await WriteErrorAsync(http.Response, StatusOf(e)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A server-streaming method (snapshot, election observe).</summary>
    public sealed class ServerStreaming<TRequest, TResponse>(MethodDescriptor descriptor, string fullName, ServerStreamingServerMethod<TRequest, TResponse> call) : GatewayRoute(descriptor, fullName)
        where TRequest : class
        where TResponse : class
    {
        /// <inheritdoc />
        public override async Task HandleAsync(HttpContext http, ReadOnlyMemory<byte> body)
        {
            // grpc-gateway sets these before the first response (sent with it, or with the end).
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/json";
            var context = new GatewayCallContext(http, FullName);
            using var writer = new ResponseStream<TResponse>(http.Response);
            try
            {
                var request = (TRequest)GatewayBody.ParseOne(body, Descriptor.InputType);
                await call(request, writer, context).ConfigureAwait(false);
            }
            catch (Exception e) when (!(e is OperationCanceledException && http.RequestAborted.IsCancellationRequested))
            {
                await writer.WriteErrorAsync(StatusOf(e)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// A bidirectional method (watch, lease keep-alive): the body's messages are the request stream,
    /// the responses stream back as <c>{"result":…}</c> lines. The request stream ends with the body,
    /// except for watches, which stay open until the client goes away (etcd's watch server keeps a
    /// half-closed stream's watchers).
    /// </summary>
    public sealed class Duplex<TRequest, TResponse>(MethodDescriptor descriptor, string fullName, DuplexStreamingServerMethod<TRequest, TResponse> call, bool holdRequestStreamOpen) : GatewayRoute(descriptor, fullName)
        where TRequest : class
        where TResponse : class
    {
        /// <summary>Most messages read from one body.</summary>
        public const int MessagesPerBodyMax = 1000;

        /// <inheritdoc />
        public override async Task HandleAsync(HttpContext http, ReadOnlyMemory<byte> body)
        {
            var (messages, error) = GatewayBody.ParseMany(body, Descriptor.InputType, MessagesPerBodyMax);
            if (messages.Count == 0 && error is not null)
            {
                // grpc-gateway fails the call when the first request does not decode, with code
                // Unknown (a plain Go error); a later one only ends the request stream.
                await WriteErrorAsync(http.Response, new Status(StatusCode.Unknown, error.Status.Detail)).ConfigureAwait(false);
                return;
            }

            // grpc-gateway sets these before the first response (sent with it, or with the end).
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = "application/json";
            var context = new GatewayCallContext(http, FullName);
            using var writer = new ResponseStream<TResponse>(http.Response);
            try
            {
                var requests = messages.Cast<TRequest>().ToList();
                var reader = new RequestStream<TRequest>(requests, holdRequestStreamOpen);
                await call(reader, writer, context).ConfigureAwait(false);
            }
            catch (Exception e) when (!(e is OperationCanceledException && http.RequestAborted.IsCancellationRequested))
            {
                await writer.WriteErrorAsync(StatusOf(e)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The request stream of a bidirectional call: the body's messages, then the end (or a wait for the call's end).</summary>
    private sealed class RequestStream<T>(List<T> messages, bool holdOpen) : IAsyncStreamReader<T>
        where T : class
    {
        private int _next;

        public T Current { get; private set; } = null!;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (_next < messages.Count)
            {
                Current = messages[_next++];
                return true;
            }

            if (holdOpen)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }

            return false;
        }
    }

    /// <summary>Writes each response as a <c>{"result":…}</c> line, flushed; an error as grpc-gateway's stream error chunk.</summary>
    private sealed class ResponseStream<T>(HttpResponse response) : IServerStreamWriter<T>, IDisposable
        where T : class
    {
        private readonly SemaphoreSlim _writing = new(1, 1);
        private bool _wroteMessage;

        public WriteOptions? WriteOptions { get; set; }

        public void Dispose() => _writing.Dispose();

        public Task WriteAsync(T message) => WriteAsync(message, CancellationToken.None);

        public async Task WriteAsync(T message, CancellationToken cancellationToken)
        {
            var line = "{\"result\":" + Format((IMessage)message) + "}\n";
            await _writing.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (!response.HasStarted)
                {
                    response.StatusCode = StatusCodes.Status200OK;
                    response.ContentType = "application/json";
                }

                await response.WriteAsync(line, cancellationToken).ConfigureAwait(false);
                await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
                _wroteMessage = true;
            }
            finally
            {
                _writing.Release();
            }
        }

        public async Task WriteErrorAsync(Status status)
        {
            await _writing.WaitAsync().ConfigureAwait(false);
            try
            {
                if (!response.HasStarted && !_wroteMessage)
                {
                    response.StatusCode = GatewayJson.HttpStatusOf(status.StatusCode);
                    response.ContentType = "application/json";
                }

                await response.WriteAsync(GatewayJson.StreamErrorChunk(status)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or InvalidOperationException)
            {
                // The client is gone.
            }
            finally
            {
                _writing.Release();
            }
        }
    }
}
