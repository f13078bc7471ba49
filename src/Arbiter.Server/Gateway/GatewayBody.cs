using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace Arbiter.Server.Gateway;

/// <summary>
/// A request body as grpc-gateway reads it: a sequence of JSON objects (one for a unary call, where
/// an empty body is the empty message; each one a message of the request stream for a bidirectional
/// call, where an empty body is no message).
/// Field names may be the proto's or their lowerCamelCase form; unknown fields are ignored, as etcd's
/// gateway ignores them.
/// </summary>
internal static class GatewayBody
{
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    /// <summary>A unary call's request: the body's first JSON object (the rest is not read, as Go's decoder leaves it), or the empty message for an empty body.</summary>
    /// <exception cref="RpcException">InvalidArgument, with Go's text where it is known, when the body is not JSON or not the message.</exception>
    public static IMessage ParseOne(ReadOnlyMemory<byte> body, MessageDescriptor descriptor)
    {
        var (messages, error) = ParseMany(body, descriptor, countMax: 1);
        if (error is not null)
        {
            throw error;
        }

        // Go's decoder meets io.EOF on an empty body; grpc-gateway then sends the empty message.
        return messages.Count > 0 ? messages[0] : descriptor.Parser.ParseFrom(ByteString.Empty);
    }

    /// <summary>
    /// A stream's requests: the body's JSON objects up to the first that does not parse (at most
    /// <paramref name="countMax"/>), and that failure, if any. An empty body is no request at all.
    /// </summary>
    public static (List<IMessage> Messages, RpcException? Error) ParseMany(ReadOnlyMemory<byte> body, MessageDescriptor descriptor, int countMax)
    {
        var messages = new List<IMessage>();
        var reader = new Utf8JsonReader(body.Span, new JsonReaderOptions { AllowMultipleValues = true, MaxDepth = 64 });
        while (messages.Count < countMax)
        {
            long start;
            long end;
            try
            {
                if (!reader.Read())
                {
                    break;
                }

                start = reader.TokenStartIndex;
                reader.Skip();
                end = reader.BytesConsumed;
            }
            catch (JsonException e)
            {
                return (messages, Invalid(GoSyntaxError(e, body)));
            }

            var json = System.Text.Encoding.UTF8.GetString(body.Span[(int)start..(int)end]);
            try
            {
                messages.Add(Parser.Parse(json, descriptor));
            }
            catch (Exception e) when (e is InvalidProtocolBufferException or InvalidJsonException or FormatException or OverflowException)
            {
                return (messages, Invalid(e.Message));
            }
        }

        return (messages, null);
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    /// <summary>Go's encoding/json wording for the syntax errors clients actually make (a cut-off body, a stray character).</summary>
    private static string GoSyntaxError(JsonException e, ReadOnlyMemory<byte> body)
    {
        var message = e.Message;
        const string InvalidStart = "' is an invalid start of a value.";
        var at = message.IndexOf(InvalidStart, StringComparison.Ordinal);
        if (at > 1 && message[0] == '\'')
        {
            return $"invalid character '{message[1..at]}' looking for beginning of value";
        }

        if (e.BytePositionInLine is { } position && e.LineNumber is { } line && AtEnd(body.Span, line, position))
        {
            return "unexpected EOF";
        }

        return message;
    }

    private static bool AtEnd(ReadOnlySpan<byte> body, long line, long position)
    {
        var lines = 0L;
        var index = 0;
        for (; index < body.Length && lines < line; index++)
        {
            if (body[index] == (byte)'\n')
            {
                lines++;
            }
        }

        var rest = body[Math.Min(body.Length, index + (int)Math.Min(position, int.MaxValue))..];
        return rest.TrimStart(" \t\r\n"u8).IsEmpty;
    }
}
