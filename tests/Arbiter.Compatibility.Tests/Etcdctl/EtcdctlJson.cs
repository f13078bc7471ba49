using System.Text;
using System.Text.Json;

namespace Arbiter.Compatibility.Tests.Etcdctl;

/// <summary>A key-value as printed by <c>etcdctl -w json</c> (key/value are base64 there).</summary>
public sealed record JsonKv(string Key, string Value, long CreateRevision, long ModRevision, long Version, long Lease);

/// <summary>Reads the parts of <c>etcdctl -w json</c> output the tests assert on.</summary>
public static class EtcdctlJson
{
    public static long HeaderRevision(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("header").GetProperty("revision").GetInt64();
    }

    public static IReadOnlyList<JsonKv> Kvs(string json)
    {
        using var doc = JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("kvs", out var kvs))
        {
            return [];
        }

        return [.. kvs.EnumerateArray().Select(kv => new JsonKv(
            Base64(kv, "key"),
            Base64(kv, "value"),
            Int(kv, "create_revision"),
            Int(kv, "mod_revision"),
            Int(kv, "version"),
            Int(kv, "lease")))];
    }

    public static long Count(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Int(doc.RootElement, "count");
    }

    public static bool More(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("more", out var more) && more.GetBoolean();
    }

    private static string Base64(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? Encoding.UTF8.GetString(Convert.FromBase64String(value.GetString()!)) : string.Empty;

    private static long Int(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.GetInt64() : 0;
}
