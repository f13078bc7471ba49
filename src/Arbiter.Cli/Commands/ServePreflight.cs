using System.Net;
using System.Net.Sockets;
using Arbiter.Node.Cluster;
using Arbiter.Server;

namespace Arbiter.Cli.Commands;

/// <summary>
/// What <c>arbiter serve</c> checks before it creates anything on disk: every listen URL parses,
/// no address is listed twice, and each one can be bound now (not in use, an address of this
/// machine). A failure is one line naming the flag and the URL, so a mistyped flag never leaves a
/// half-initialised data directory behind. Binding can still fail afterwards (another process may
/// take the port in between); <see cref="ServeCommand"/> reports that as one line too.
/// </summary>
internal static class ServePreflight
{
    /// <summary>A listen address and the flag it came from.</summary>
    internal sealed record Listen(string Flag, string Url, IPEndPoint EndPoint);

    /// <summary>Exit code for a listen address that cannot be bound (a runtime condition, as etcd's exit 1), not a malformed flag (2).</summary>
    public const int CannotListenExitCode = 1;

    /// <summary>Parses every listen URL; on failure, the line to print (flag errors exit with 2).</summary>
    public static bool TryParse(IReadOnlyList<string> clientUrls, IReadOnlyList<string> metricsUrls, string? peerListenUrl, out List<Listen> listens, out string? error)
    {
        listens = [];
        error = null;
        try
        {
            listens.AddRange(clientUrls.Select(url => new Listen("--listen-client-urls", url, ArbiterServer.ParseListenUrl(url).EndPoint)));
            listens.AddRange(metricsUrls.Select(url => new Listen("--listen-metrics-urls", url, ArbiterServer.ParseEndpoint(url))));
            if (peerListenUrl is not null)
            {
                listens.Add(new Listen("--listen-peer-urls", peerListenUrl, PeerAddress.Parse(peerListenUrl)));
            }
        }
        catch (Exception e) when (e is ArgumentException or SocketException)
        {
            error = $"error: {(e is ArgumentException { ParamName: { } parameter } ? e.Message.Replace($" (Parameter '{parameter}')", "", StringComparison.Ordinal) : e.Message)}";
            return false;
        }

        var twice = listens.GroupBy(listen => listen.EndPoint).FirstOrDefault(group => group.Count() > 1);
        if (twice is not null)
        {
            error = $"error: {twice.Key} is listed twice ({string.Join(", ", twice.Select(listen => $"{listen.Flag} {listen.Url}"))})";
            return false;
        }

        return true;
    }

    /// <summary>Binds each address for a moment; on failure, the line to print.</summary>
    public static string? FirstUnbindable(IEnumerable<Listen> listens)
    {
        foreach (var listen in listens)
        {
            if (listen.EndPoint.Port == 0)
            {
                continue; // any free port: nothing to check
            }

            using var probe = new Socket(listen.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                // As Kestrel and DotNext bind: connections of a previous run in TIME_WAIT do not count.
                probe.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                probe.Bind(listen.EndPoint);
                probe.Listen();
            }
            catch (SocketException e)
            {
                return CannotListen(listen.Flag, listen.Url, e);
            }
        }

        return null;
    }

    /// <summary>etcd's wording, plus the flag: <c>listen tcp 127.0.0.1:2379: bind: address already in use</c>.</summary>
    public static string CannotListen(string flag, string url, SocketException e) =>
        $"error: cannot listen on {url} ({flag}): {Describe(e)}";

    /// <summary>The reason as a short phrase, the same on every platform.</summary>
    public static string Describe(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.AddressAlreadyInUse => "address already in use",
        SocketError.AddressNotAvailable => "cannot assign requested address (not an address of this machine)",
        SocketError.AccessDenied => "permission denied",
        _ => e.Message,
    };
}
