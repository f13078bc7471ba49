using Arbiter.Protocol.Etcd;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Arbiter.Compatibility.Tests.Differential;

/// <summary>
/// Makes two servers' answers comparable: header fields that name the member or the raft term are
/// zeroed everywhere, and lists whose order etcd leaves unspecified (Go map order) are sorted.
/// </summary>
public static class Normalizer
{
    private static readonly JsonFormatter Formatter = JsonFormatter.Default;

    public static string ToJson(IMessage message) => Formatter.Format(message);

    /// <summary>A normalized deep copy of <paramref name="message"/>.</summary>
    public static IMessage Normalize(IMessage message)
    {
        var copy = message.Descriptor.Parser.ParseFrom(message.ToByteString());
        Walk(copy);
        switch (copy)
        {
            case LeaseLeasesResponse leases:
                var sorted = leases.Leases.OrderBy(l => l.ID).ToList();
                leases.Leases.Clear();
                leases.Leases.AddRange(sorted);
                break;
            case LeaseTimeToLiveResponse timeToLive:
                var keys = timeToLive.Keys.OrderBy(k => k.ToBase64(), StringComparer.Ordinal).ToList();
                timeToLive.Keys.Clear();
                timeToLive.Keys.AddRange(keys);
                break;
        }

        return copy;
    }

    private static void Walk(IMessage message)
    {
        if (message is ResponseHeader header)
        {
            header.ClusterId = 0;
            header.MemberId = 0;
            header.RaftTerm = 0;
            return;
        }

        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            if (field.FieldType != FieldType.Message)
            {
                continue;
            }

            var value = field.Accessor.GetValue(message);
            if (field.IsRepeated)
            {
                foreach (var item in (System.Collections.IEnumerable)value)
                {
                    Walk((IMessage)item);
                }
            }
            else if (value is IMessage child)
            {
                Walk(child);
            }
        }
    }
}
