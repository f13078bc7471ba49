namespace Arbiter.Storage;

/// <summary>Placeholder; the write-ahead log lands in its own commit.</summary>
internal static class WriteAheadLogPlaceholder
{
}
