using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Compatibility.Tests.Gateway;

/// <summary>What one HTTP request got back: status, media type and body.</summary>
public sealed record GatewayReply(int Status, string ContentType, string Body)
{
    public override string ToString() => $"{Status} {ContentType} {Body}";
}

/// <summary>
/// A fresh real etcd 3.4 and a fresh Arbiter side by side, for the JSON gateway's differential
/// tests: every request goes to both over HTTP/1.1 and the answers must be the same once the values
/// that legitimately differ are masked (<see cref="GatewayNormalizer"/>).
/// </summary>
public sealed class GatewayPair : IAsyncLifetime
{
    public EtcdProcess Etcd { get; } = new("etcd-gateway");

    public ArbiterProcess Arbiter { get; } = new("arbiter-gateway");

    /// <summary>HTTP/1.1 only, as curl without --http2 and most gateway clients speak.</summary>
    public HttpClient Http { get; } = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
    {
        DefaultRequestVersion = HttpVersion.Version11,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(60),
    };

    public async Task InitializeAsync() => await Task.WhenAll(Etcd.StartAsync(), Arbiter.StartAsync());

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Etcd.DisposeAsync();
        await Arbiter.DisposeAsync();
    }

    /// <summary>Sends one request to <paramref name="endpoint"/>, with <paramref name="authorization"/> (a token, raw) as its <c>Authorization</c> header when given.</summary>
    public async Task<GatewayReply> SendAsync(string endpoint, HttpMethod method, string path, string? body, string? authorization = null)
    {
        using var request = new HttpRequestMessage(method, endpoint + path);
        if (authorization is not null)
        {
            // Raw, as etcd's gateway reads it: not a "Bearer" credential, so no validation of its form.
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await Http.SendAsync(request);
        return new GatewayReply(
            (int)response.StatusCode,
            response.Content.Headers.ContentType?.ToString() ?? string.Empty,
            await response.Content.ReadAsStringAsync());
    }
}

/// <summary>
/// Masks what differs between two servers for legitimate reasons (ids, terms, raft indexes, sizes,
/// hashes, URLs), and counts revisions from a base taken at the start of each test, so that a test
/// compares what it did and not what ran before it.
/// </summary>
public sealed class GatewayNormalizer(long baseRevision)
{
    /// <summary>Values that differ between any two clusters.</summary>
    public static readonly HashSet<string> AlwaysMasked = new(StringComparer.Ordinal)
    {
        "cluster_id", "member_id", "raft_term", "leader", "raftIndex", "raftTerm", "raftAppliedIndex",
        "dbSize", "dbSizeInUse", "hash", "peerURLs", "clientURLs",
    };

    /// <summary>
    /// Values removed before comparing: the space in use of the backend file (etcd's bbolt pages;
    /// Arbiter's log has no such figure and reports 0, which the gateway omits).
    /// </summary>
    public static readonly HashSet<string> AlwaysDropped = new(StringComparer.Ordinal) { "dbSizeInUse" };

    /// <summary>Revision-valued fields, counted from the base.</summary>
    public static readonly HashSet<string> RevisionFields = new(StringComparer.Ordinal)
    {
        "revision", "create_revision", "mod_revision", "compact_revision", "rev",
    };

    public long BaseRevision { get; } = baseRevision;

    /// <summary>The body, compact, with <paramref name="alsoMasked"/> masked too; a body that is not JSON is returned as it is.</summary>
    public string Normalize(string body, params string[] alsoMasked)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(body);
        }
        catch (System.Text.Json.JsonException)
        {
            return body;
        }

        Walk(node, new HashSet<string>(alsoMasked, StringComparer.Ordinal));
        return node?.ToJsonString() ?? "null";
    }

    /// <summary>A request body with <c>{rev+N}</c> replaced by the base revision plus N.</summary>
    public string Request(string template)
    {
        var result = new StringBuilder();
        var at = 0;
        while (true)
        {
            var start = template.IndexOf("{rev+", at, StringComparison.Ordinal);
            if (start < 0)
            {
                return result.Append(template, at, template.Length - at).ToString();
            }

            var end = template.IndexOf('}', start);
            var offset = long.Parse(template.AsSpan(start + 5, end - start - 5), CultureInfo.InvariantCulture);
            result.Append(template, at, start - at).Append((BaseRevision + offset).ToString(CultureInfo.InvariantCulture));
            at = end + 1;
        }
    }

    private void Walk(JsonNode? node, HashSet<string> alsoMasked)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var name in obj.Select(p => p.Key).ToList())
                {
                    if (AlwaysDropped.Contains(name))
                    {
                        obj.Remove(name);
                    }
                    else if (AlwaysMasked.Contains(name) || alsoMasked.Contains(name))
                    {
                        obj[name] = "<masked>";
                    }
                    else if (RevisionFields.Contains(name) && obj[name] is JsonValue value && value.TryGetValue<string>(out var text)
                        && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var revision))
                    {
                        obj[name] = "base+" + (revision - BaseRevision).ToString(CultureInfo.InvariantCulture);
                    }
                    else
                    {
                        Walk(obj[name], alsoMasked);
                    }
                }

                if (obj["leases"] is JsonArray leases)
                {
                    // LeaseLeases lists a Go map: its order is random on etcd.
                    var sorted = leases.Select(l => l?.ToJsonString()).Order(StringComparer.Ordinal).ToList();
                    leases.Clear();
                    foreach (var lease in sorted)
                    {
                        leases.Add(lease is null ? null : JsonNode.Parse(lease));
                    }
                }

                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    Walk(item, alsoMasked);
                }

                break;
        }
    }
}
