using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using DotNext.Buffers;
using DotNext.IO;
using DotNext.Net;
using DotNext.Net.Cluster.Consensus.Raft.Membership;

namespace Arbiter.Node.Cluster;

/// <summary>Peer URLs (etcd style, <c>http://host:port</c>) as the endpoints DotNext's TCP transport uses, and member ids derived from them.</summary>
public static class PeerAddress
{
    /// <summary>Parses a peer URL into an endpoint; <c>localhost</c> means 127.0.0.1, other names are resolved.</summary>
    public static IPEndPoint Parse(string peerUrl)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(peerUrl);
        if (!Uri.TryCreate(peerUrl, UriKind.Absolute, out var uri) || uri.Port <= 0)
        {
            throw new ArgumentException($"Peer URL '{peerUrl}' is not of the form http://host:port.", nameof(peerUrl));
        }

        var host = uri.Host.Trim('[', ']');
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            return new IPEndPoint(IPAddress.Loopback, uri.Port);
        }

        if (IPAddress.TryParse(host, out var ip))
        {
            return new IPEndPoint(ip, uri.Port);
        }

        var resolved = Dns.GetHostAddresses(host);
        return resolved.Length > 0
            ? new IPEndPoint(resolved[0], uri.Port)
            : throw new ArgumentException($"Peer URL '{peerUrl}': host '{host}' does not resolve.", nameof(peerUrl));
    }

    /// <summary>The canonical peer URL of an endpoint.</summary>
    public static string ToUrl(EndPoint endPoint) => endPoint switch
    {
        IPEndPoint ip => string.Create(CultureInfo.InvariantCulture, $"http://{(ip.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ip.Address}]" : ip.Address.ToString())}:{ip.Port}"),
        DnsEndPoint dns => string.Create(CultureInfo.InvariantCulture, $"http://{dns.Host}:{dns.Port}"),
        _ => "http://" + endPoint,
    };

    /// <summary>
    /// A member's id: from its (canonical) peer URL and the cluster token, so that every member
    /// computes the same id for any other member without asking it.
    /// </summary>
    public static ulong MemberId(EndPoint endPoint, string clusterToken)
    {
        var seed = ToUrl(endPoint) + "|" + clusterToken;
        return BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(seed)), 0);
    }

    /// <summary>The cluster id: from the founding members' ids and the token, as etcd derives it.</summary>
    public static ulong ClusterId(IEnumerable<EndPoint> foundingMembers, string clusterToken)
    {
        var ids = string.Join(",", foundingMembers.Select(e => MemberId(e, clusterToken)).Order().Select(id => id.ToString("x16", CultureInfo.InvariantCulture)));
        return BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(ids + "|" + clusterToken)), 0);
    }
}

/// <summary>Raft membership kept in a file beside the log, so a restarted member knows the current members (not the initial ones).</summary>
internal sealed class FileMembershipStorage(string fileName) : PersistentClusterConfigurationStorage<EndPoint>(fileName)
{
    protected override void Encode(EndPoint address, ref BufferWriterSlim<byte> writer) => writer.WriteEndPoint(address);

    protected override EndPoint Decode(ref SequenceReader reader) => reader.ReadEndPoint();
}
