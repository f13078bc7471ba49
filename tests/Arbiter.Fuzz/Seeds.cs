using System.Buffers.Binary;
using System.Text;
using Arbiter.Fuzz.Targets;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Internal;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Arbiter.Fuzz;

/// <summary>Seed inputs built the way real clients send them (etcdctl's and the SDK's requests, gRPC over HTTP/2).</summary>
public static class Seeds
{
    private static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true));

    /// <summary>Requests as clients send them, of many types.</summary>
    public static IReadOnlyList<IMessage> SampleRequests { get; } =
    [
        new RangeRequest { Key = B("foo") },
        new RangeRequest { Key = B("a"), RangeEnd = B("b"), Limit = 10, Revision = 0, SortOrder = RangeRequest.Types.SortOrder.Descend, SortTarget = RangeRequest.Types.SortTarget.Mod, KeysOnly = true },
        new RangeRequest { Key = B("\0"), RangeEnd = B("\0"), CountOnly = true, Serializable = true },
        new PutRequest { Key = B("foo"), Value = B("bar") },
        new PutRequest { Key = B("k"), Value = B("v"), Lease = 7587, PrevKv = true },
        new PutRequest { Key = B("k"), IgnoreValue = true, IgnoreLease = true },
        new DeleteRangeRequest { Key = B("a"), RangeEnd = B("z"), PrevKv = true },
        new TxnRequest
        {
            Compare = { new Compare { Key = B("k"), Result = Compare.Types.CompareResult.Equal, Target = Compare.Types.CompareTarget.Value, Value = B("v") }, new Compare { Key = B("r"), Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Greater, ModRevision = 3 } },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = B("k"), Value = B("w") } }, new RequestOp { RequestRange = new RangeRequest { Key = B("k") } } },
            Failure = { new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = B("k") } }, new RequestOp { RequestTxn = new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B("n"), Value = B("1") } } } } } },
        },
        new CompactionRequest { Revision = 3, Physical = true },
        new LeaseGrantRequest { TTL = 60 },
        new LeaseGrantRequest { TTL = 5, ID = 42 },
        new LeaseRevokeRequest { ID = 42 },
        new LeaseKeepAliveRequest { ID = 42 },
        new LeaseTimeToLiveRequest { ID = 42, Keys = true },
        new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("w"), RangeEnd = B("x"), StartRevision = 2, PrevKv = true, ProgressNotify = true, Filters = { WatchCreateRequest.Types.FilterType.Nodelete } } },
        new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = 1 } },
        new AuthenticateRequest { Name = "root", Password = "pw" },
        new AuthUserAddRequest { Name = "alice", Password = "secret" },
        new AuthUserGrantRoleRequest { User = "alice", Role = "reader" },
        new AuthRoleAddRequest { Name = "reader" },
        new AuthRoleGrantPermissionRequest { Name = "reader", Perm = new Arbiter.Protocol.Auth.Permission { PermType = Arbiter.Protocol.Auth.Permission.Types.Type.Readwrite, Key = B("app/"), RangeEnd = B("app0") } },
        new MemberAddRequest { PeerURLs = { "http://127.0.0.1:2380" }, IsLearner = true },
        new Arbiter.Protocol.Lock.LockRequest { Name = B("mylock"), Lease = 42 },
        new Arbiter.Protocol.Election.CampaignRequest { Name = B("election"), Lease = 42, Value = B("me") },
    ];

    /// <summary>Each request type alone (empty message) and every sample, behind its type byte.</summary>
    public static IEnumerable<byte[]> GrpcRequests()
    {
        for (var i = 0; i < RequestTypes.All.Count; i++)
        {
            yield return [(byte)i];
        }

        foreach (var sample in SampleRequests)
        {
            yield return [(byte)IndexOf(RequestTypes.All, sample.Descriptor), .. sample.ToByteArray()];
        }
    }

    /// <summary>The samples that are commands, as the core's log holds them.</summary>
    public static IEnumerable<byte[]> Commands()
    {
        var fields = Command.Descriptor.Fields.InDeclarationOrder().Where(f => f.FieldType == FieldType.Message && f.RealContainingOneof is not null).ToList();
        yield return new Command().ToByteArray();
        foreach (var sample in SampleRequests)
        {
            if (fields.FirstOrDefault(f => f.MessageType.FullName == sample.Descriptor.FullName) is { } field)
            {
                var command = new Command { TimeMs = 1000, RequestId = 7 };
                field.Accessor.SetValue(command, sample);
                yield return command.ToByteArray();
            }
        }
    }

    /// <summary>JSON bodies as curl or etcd3gw post them (proto field names, base64 bytes, int64 as strings).</summary>
    public static IEnumerable<byte[]> GatewayBodies()
    {
        for (var i = 0; i < RequestTypes.Gateway.Count; i++)
        {
            yield return [(byte)i, .. "{}"u8];
        }

        foreach (var sample in SampleRequests)
        {
            var index = IndexOf(RequestTypes.Gateway, sample.Descriptor);
            if (index >= 0)
            {
                yield return [(byte)index, .. Encoding.UTF8.GetBytes(Json.Format(sample))];
            }
        }

        // A watch stream's body: several objects in a row.
        var watch = IndexOf(RequestTypes.Gateway, WatchRequest.Descriptor);
        yield return [(byte)watch, .. "{\"create_request\":{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\"}}\n{\"progress_request\":{}}"u8];
    }

    /// <summary>Whole client byte streams: preface, SETTINGS, then gRPC calls, with and without a URL in :authority, split into CONTINUATIONs, padded, with priority.</summary>
    public static IEnumerable<byte[]> Http2Connections()
    {
        var put = new PutRequest { Key = B("foo"), Value = B("bar") }.ToByteArray();
        byte[] settings = [.. Preface, .. Frame(0x4, 0, 0, [0x00, 0x02, 0, 0, 0, 0, 0x00, 0x04, 0, 0x40, 0, 0]), .. Frame(0x8, 0, 0, [0, 0x0F, 0, 0x01])];
        yield return [.. settings, .. Request(1, "/etcdserverpb.KV/Put", "http://127.0.0.1:2379", put)];
        yield return [.. settings, .. Request(1, "/etcdserverpb.KV/Put", "127.0.0.1:2379", put), .. Request(3, "/etcdserverpb.KV/Range", "127.0.0.1:2379", new RangeRequest { Key = B("foo") }.ToByteArray())];

        // Incremental indexing, then the indexed entry: the dynamic table matters after a rewrite.
        byte[] indexedBlock = [0x83, 0x86, .. Literal(0x44, "/etcdserverpb.KV/Range"), .. Literal(0x41, "http://127.0.0.1:2379"), 0x40, .. Str("content-type"), .. Str("application/grpc"), 0x40, .. Str("te"), .. Str("trailers")];
        byte[] reuseBlock = [0x83, 0x86, 0xC1, 0xC0, 0xBF, 0xBE];
        yield return [.. settings, .. Frame(0x1, 0x4, 1, indexedBlock), .. Frame(0x0, 0x1, 1, Grpc(put)), .. Frame(0x1, 0x4, 3, reuseBlock), .. Frame(0x0, 0x1, 3, Grpc(put))];

        // HEADERS (padded, with priority) and a CONTINUATION.
        var half = indexedBlock.Length / 2;
        byte[] padded = [3, 0, 0, 0, 0, 16, .. indexedBlock[..half], 0, 0, 0];
        yield return [.. settings, .. Frame(0x1, 0x8 | 0x20, 1, padded), .. Frame(0x9, 0x4, 1, indexedBlock[half..]), .. Frame(0x0, 0x1, 1, Grpc(put))];

        // PING, WINDOW_UPDATE, RST_STREAM and GOAWAY between calls.
        yield return [.. settings, .. Frame(0x6, 0, 0, new byte[8]), .. Request(1, "/etcdserverpb.Watch/Watch", "http://localhost:2379", new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("w") } }.ToByteArray()), .. Frame(0x3, 0, 1, [0, 0, 0, 8]), .. Frame(0x7, 0, 0, [0, 0, 0, 1, 0, 0, 0, 0])];
    }

    /// <summary>Header blocks: the ones above, and RFC 7541's Huffman-coded and table-size-update examples.</summary>
    public static IEnumerable<byte[]> HpackBlocks()
    {
        yield return [0x83, 0x86, .. Literal(0x44, "/etcdserverpb.KV/Range"), .. Literal(0x41, "http://127.0.0.1:2379"), 0x40, .. Str("content-type"), .. Str("application/grpc")];
        yield return [0x82, 0x86, 0x84, 0x41, 0x8C, 0xF1, 0xE3, 0xC2, 0xE5, 0xF2, 0x3A, 0x6B, 0xA0, 0xAB, 0x90, 0xF4, 0xFF];
        yield return [0x3F, 0xE1, 0x1F, 0x82, 0x86, 0x84, 0x41, 0x0F, .. "www.example.com"u8];
        yield return [0x48, 0x82, 0x64, 0x02, 0x58, 0x85, 0xAE, 0xC3, 0x77, 0x1A, 0x4B, 0x61, 0x96, 0xD0, 0x7A, 0xBE, 0x94, 0x10, 0x54, 0xD4, 0x44, 0xA8, 0x20, 0x05, 0x95, 0x04, 0x0B, 0x81, 0x66, 0xE0, 0x82, 0xA6, 0x2D, 0x1B, 0xFF];
        yield return [0x10, .. Str("authorization"), .. Str("token.1234")];
    }

    /// <summary>First bytes of connections: the preface, HTTP/1.1 requests, authorities.</summary>
    public static IEnumerable<byte[]> FirstBytes()
    {
        yield return Preface;
        yield return [.. Preface, .. Frame(0x4, 0, 0, [])];
        yield return "GET /health HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n"u8.ToArray();
        yield return "POST /v3/kv/range HTTP/1.1\r\nContent-Length: 15\r\n\r\n{\"key\":\"Zm9v\"}"u8.ToArray();
        yield return "PRI * HTTP/2.0\r\n"u8.ToArray();
        yield return "http://127.0.0.1:2379"u8.ToArray();
        yield return "HTTPS://[::1]:2379/path?q#f"u8.ToArray();
    }

    /// <summary>The HTTP/2 connection preface.</summary>
    public static byte[] Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    /// <summary>One HTTP/2 frame.</summary>
    public static byte[] Frame(byte type, byte flags, int stream, byte[] payload)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), stream);
        payload.CopyTo(frame, 9);
        return frame;
    }

    private static byte[] Request(int stream, string path, string authority, byte[] message)
    {
        byte[] block = [0x83, 0x86, .. Literal(0x04, path), .. Literal(0x01, authority), 0x00, .. Str("content-type"), .. Str("application/grpc"), 0x00, .. Str("te"), .. Str("trailers")];
        return [.. Frame(0x1, 0x4, stream, block), .. Frame(0x0, 0x1, stream, Grpc(message))];
    }

    private static byte[] Grpc(byte[] message)
    {
        var data = new byte[5 + message.Length];
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(1), message.Length);
        message.CopyTo(data, 5);
        return data;
    }

    private static byte[] Literal(byte prefix, string value) => [prefix, .. Str(value)];

    private static byte[] Str(string value) => [(byte)value.Length, .. Encoding.ASCII.GetBytes(value)];

    private static ByteString B(string value) => ByteString.CopyFromUtf8(value);

    private static int IndexOf(IReadOnlyList<MessageDescriptor> types, MessageDescriptor descriptor)
    {
        for (var i = 0; i < types.Count; i++)
        {
            if (types[i].FullName == descriptor.FullName)
            {
                return i;
            }
        }

        return -1;
    }
}
