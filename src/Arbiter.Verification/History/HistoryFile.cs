using System.Text.Json;
using System.Text.Json.Serialization;
using Arbiter.Verification.Checkers;

namespace Arbiter.Verification.History;

/// <summary>
/// Everything a run recorded, as written to (and read back from) JSON: the operations, watch
/// streams, lock holds and the fenced store's log, and the nemesis notes.
/// </summary>
public sealed record HistoryFile
{
    /// <summary>The operations, in invocation order.</summary>
    public IReadOnlyList<Operation> Operations { get; init; } = [];

    /// <summary>The watch streams (watch workload).</summary>
    public IReadOnlyList<WatchStreamRecord> Watches { get; init; } = [];

    /// <summary>Lock holds (lock workload).</summary>
    public IReadOnlyList<LockHold> Holds { get; init; } = [];

    /// <summary>The token-checking store's log (lock workload).</summary>
    public IReadOnlyList<FencedStoreEntry> Store { get; init; } = [];

    /// <summary>Nemesis and cluster events.</summary>
    public IReadOnlyList<HistoryNote> Notes { get; init; } = [];

    /// <summary>The JSON options every harness file uses: camelCase, indented, enums by name.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads a history file.</summary>
    public static HistoryFile Load(string path) =>
        JsonSerializer.Deserialize<HistoryFile>(File.ReadAllText(path), JsonOptions) ?? throw new InvalidDataException($"{path}: empty");

    /// <summary>Writes this history to <paramref name="path"/>.</summary>
    public void Save(string path) => File.WriteAllText(path, JsonSerializer.Serialize(this, JsonOptions));
}
