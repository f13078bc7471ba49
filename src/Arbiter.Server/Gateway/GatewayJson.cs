using System.Globalization;
using System.Text;
using Grpc.Core;

namespace Arbiter.Server.Gateway;

/// <summary>
/// The JSON that etcd 3.4's grpc-gateway (v1, <c>OrigName: true</c>, defaults omitted) writes
/// besides the messages themselves: error bodies, stream chunks and the HTTP status of a gRPC code.
/// </summary>
internal static class GatewayJson
{
    /// <summary>grpc-gateway v1's <c>HTTPStatusFromCode</c>.</summary>
    public static int HttpStatusOf(StatusCode code) => code switch
    {
        StatusCode.OK => 200,
        StatusCode.Cancelled => 408,
        StatusCode.Unknown => 500,
        StatusCode.InvalidArgument => 400,
        StatusCode.DeadlineExceeded => 504,
        StatusCode.NotFound => 404,
        StatusCode.AlreadyExists => 409,
        StatusCode.PermissionDenied => 403,
        StatusCode.Unauthenticated => 401,
        StatusCode.ResourceExhausted => 429,
        StatusCode.FailedPrecondition => 412,
        StatusCode.Aborted => 409,
        StatusCode.OutOfRange => 400,
        StatusCode.Unimplemented => 501,
        StatusCode.Internal => 500,
        StatusCode.Unavailable => 503,
        StatusCode.DataLoss => 500,
        _ => 500,
    };

    /// <summary>A unary call's error body: <c>{"error":"…","message":"…","code":N}</c>.</summary>
    public static string ErrorBody(Status status)
    {
        var message = Quote(status.Detail);
        return $"{{\"error\":{message},\"message\":{message},\"code\":{((int)status.StatusCode).ToString(CultureInfo.InvariantCulture)}}}";
    }

    /// <summary>A stream's error chunk: <c>{"error":{"grpc_code":N,"http_code":H,"message":"…","http_status":"…"}}</c>.</summary>
    public static string StreamErrorChunk(Status status)
    {
        var httpCode = HttpStatusOf(status.StatusCode);
        var builder = new StringBuilder("{\"error\":{");
        if (status.StatusCode != StatusCode.OK)
        {
            builder.Append("\"grpc_code\":").Append(((int)status.StatusCode).ToString(CultureInfo.InvariantCulture)).Append(',');
        }

        builder.Append("\"http_code\":").Append(httpCode.ToString(CultureInfo.InvariantCulture));
        if (status.Detail.Length > 0)
        {
            builder.Append(",\"message\":").Append(Quote(status.Detail));
        }

        builder.Append(",\"http_status\":").Append(Quote(Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(httpCode)));
        return builder.Append("}}").ToString();
    }

    /// <summary>
    /// <paramref name="json"/> without the whitespace between tokens (Google.Protobuf's formatter
    /// writes <c>{ "a": 1 }</c>; Go's jsonpb writes <c>{"a":1}</c>). Strings are copied as they are.
    /// </summary>
    public static string Compact(string json)
    {
        var builder = new StringBuilder(json.Length);
        var inString = false;
        for (var i = 0; i < json.Length; i++)
        {
            var c = json[i];
            if (inString)
            {
                builder.Append(c);
                if (c == '\\' && i + 1 < json.Length)
                {
                    builder.Append(json[++i]);
                }
                else if (c == '"')
                {
                    inString = false;
                }
            }
            else if (c == '"')
            {
                inString = true;
                builder.Append(c);
            }
            else if (c is not (' ' or '\n' or '\r' or '\t'))
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    /// <summary>A JSON string as Go's encoding/json writes it (HTML-safe: &lt;, &gt; and &amp; escaped).</summary>
    public static string Quote(string value)
    {
        var builder = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append("\\\\"); break;
                case '\n': builder.Append("\\n"); break;
                case '\r': builder.Append("\\r"); break;
                case '\t': builder.Append("\\t"); break;
                case '<' or '>' or '&' or '\u2028' or '\u2029' or < ' ':
                    builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    break;
                default: builder.Append(c); break;
            }
        }

        return builder.Append('"').ToString();
    }
}
