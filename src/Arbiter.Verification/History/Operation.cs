using System.Text.Json.Serialization;

namespace Arbiter.Verification.History;

/// <summary>How an operation ended, in Knossos's terms.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OperationStatus>))]
public enum OperationStatus
{
    /// <summary>Invoked and not yet completed (only while recording).</summary>
    Pending,

    /// <summary>It happened, with the recorded output.</summary>
    Ok,

    /// <summary>It certainly did not happen (refused before any effect, or a read that failed).</summary>
    Fail,

    /// <summary>Unknown outcome (timeout, connection lost): it may take effect at any time after its invocation, or never.</summary>
    Info,
}

/// <summary>What an operation does.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OperationKind>))]
public enum OperationKind
{
    /// <summary>Read a key; output is the value read (null: absent).</summary>
    Read,

    /// <summary>Write a unique value to a key.</summary>
    Write,

    /// <summary>Compare-and-set: if the key holds <see cref="Operation.Expected"/>, write <see cref="Operation.Value"/>; output is whether it did.</summary>
    Cas,

    /// <summary>Acquire a lock; output is the fencing token.</summary>
    Acquire,

    /// <summary>Release a lock.</summary>
    Release,

    /// <summary>A write to the harness's token-checking store; output is whether the store accepted it.</summary>
    FencedWrite,

    /// <summary>Any other operation a plug-in workload records.</summary>
    Other,
}

/// <summary>
/// One operation of a history: invocation and completion with monotonic timestamps (nanoseconds since
/// the history's start), its input and, once completed, its status and output.
/// </summary>
public sealed record Operation
{
    /// <summary>Position in the history, from 0, in invocation order.</summary>
    public required int Id { get; init; }

    /// <summary>The logical client process. A process whose operation ended <see cref="OperationStatus.Info"/> is crashed and never used again.</summary>
    public required int Process { get; init; }

    /// <summary>What it does.</summary>
    public required OperationKind Kind { get; init; }

    /// <summary>The key (or lock, or resource) it acts on; the unit of P-compositional checking.</summary>
    public required string Key { get; init; }

    /// <summary>The value written (write, CAS) or the value read (read, once completed).</summary>
    public string? Value { get; init; }

    /// <summary>CAS only: the value compared against.</summary>
    public string? Expected { get; init; }

    /// <summary>CAS: whether it swapped; fenced write: whether it was accepted.</summary>
    public bool? Succeeded { get; init; }

    /// <summary>A revision the server reported (write: its revision; acquire: the fencing token); 0 if none.</summary>
    public long Revision { get; init; }

    /// <summary>Invocation time, ns since the history's start (monotonic clock).</summary>
    public required long InvokeNs { get; init; }

    /// <summary>Completion time, ns since the history's start; <see cref="long.MaxValue"/> while pending or for <see cref="OperationStatus.Info"/>.</summary>
    public long CompleteNs { get; init; } = long.MaxValue;

    /// <summary>How it ended.</summary>
    public OperationStatus Status { get; init; } = OperationStatus.Pending;

    /// <summary>The member it was sent to, and the error of a failed or indeterminate operation.</summary>
    public string? Note { get; init; }

    /// <summary>A short human description: <c>p3 cas k1 v7→v9 = true</c>.</summary>
    public override string ToString()
    {
        var body = Kind switch
        {
            OperationKind.Read => $"read {Key} = {Value ?? "nil"}",
            OperationKind.Write => $"write {Key} {Value}",
            OperationKind.Cas => $"cas {Key} {Expected ?? "nil"}→{Value}{(Succeeded is { } s ? $" = {(s ? "true" : "false")}" : string.Empty)}",
            OperationKind.Acquire => $"acquire {Key} token {Revision}",
            OperationKind.Release => $"release {Key} token {Revision}",
            OperationKind.FencedWrite => $"fenced-write {Key} token {Revision} {Value}{(Succeeded is { } a ? (a ? " accepted" : " refused") : string.Empty)}",
            _ => $"{Kind} {Key} {Value}",
        };
        var end = CompleteNs == long.MaxValue ? "∞" : $"{CompleteNs / 1e6:F1}";
        return $"#{Id} p{Process} {body} [{Status.ToString().ToLowerInvariant()}] {InvokeNs / 1e6:F1}–{end} ms";
    }
}
