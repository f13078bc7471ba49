namespace Arbiter.Node.Watch;

/// <summary>One live watch of a <see cref="WatchStream"/>, as the dashboard lists it.</summary>
/// <param name="WatchId">The watch id on its stream.</param>
/// <param name="Key">The watched key (or range start).</param>
/// <param name="RangeEnd">The range end: null for one key, empty for every key from <paramref name="Key"/> on.</param>
/// <param name="NextRevision">The next revision the watch will deliver.</param>
/// <param name="Synced">Whether the watch has caught up and receives events as they are applied.</param>
/// <param name="PrevKv">Whether events carry the previous version.</param>
/// <param name="FilterPut">Whether PUT events are left out.</param>
/// <param name="FilterDelete">Whether DELETE events are left out.</param>
public sealed record WatchDescription(long WatchId, byte[] Key, byte[]? RangeEnd, long NextRevision, bool Synced, bool PrevKv, bool FilterPut, bool FilterDelete);
