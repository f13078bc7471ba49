using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Recipes;

/// <summary>
/// Condition waits on the store, by watch, never by polling: read once, then evaluate the predicate
/// on each change delivered after that read.
/// </summary>
public static class KeyWaits
{
    /// <summary>
    /// Waits until <paramref name="predicate"/> holds for <paramref name="key"/>'s key-value (null when
    /// absent). True when it held, false when <paramref name="timeout"/> passed first.
    /// </summary>
    public static async Task<bool> WaitUntilAsync(this ArbiterClient client, string key, Func<KeyValue?, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(predicate);
        Timeouts.Check(timeout);
        using var deadline = Timeouts.Linked(timeout, cancellationToken);
        while (true)
        {
            var response = await client.RangeAsync(new RangeRequest { Key = Keys.From(key) }, cancellationToken).ConfigureAwait(false);
            if (predicate(response.Kvs.Count == 0 ? null : response.Kvs[0]))
            {
                return true;
            }

            try
            {
                await foreach (var e in client.WatchAsync(key, new WatchOptions { StartRevision = response.Header.Revision + 1 }, deadline.Token).ConfigureAwait(false))
                {
                    if (predicate(e.Kind == WatchEventKind.Put ? e.Kv : null))
                    {
                        return true;
                    }
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
            catch (WatchCompactedException)
            {
                // Missed changes: re-read and continue.
            }
        }
    }

    /// <summary>
    /// Waits until <paramref name="predicate"/> holds for the keys under <paramref name="prefix"/>
    /// (in key order). True when it held, false on timeout.
    /// </summary>
    public static async Task<bool> WaitUntilPrefixAsync(this ArbiterClient client, string prefix, Func<IReadOnlyList<KeyValue>, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        Timeouts.Check(timeout);
        using var deadline = Timeouts.Linked(timeout, cancellationToken);
        try
        {
            await foreach (var snapshot in client.WatchPrefixSnapshotsAsync(prefix, deadline.Token).ConfigureAwait(false))
            {
                if (predicate(snapshot))
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }

        return false;
    }

    /// <summary>
    /// The keys under <paramref name="prefix"/> (in key order): the current set first, then the set
    /// after every change. Compaction while disconnected restarts from a fresh read.
    /// </summary>
    public static async IAsyncEnumerable<IReadOnlyList<KeyValue>> WatchPrefixSnapshotsAsync(this ArbiterClient client, string prefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        while (true)
        {
            var response = await client.RangeAsync(new RangeRequest { Key = Keys.From(prefix), RangeEnd = Keys.PrefixEnd(prefix) }, cancellationToken).ConfigureAwait(false);
            var state = new SortedDictionary<ByteString, KeyValue>(ByteStringComparer.Instance);
            foreach (var kv in response.Kvs)
            {
                state[kv.Key] = kv;
            }

            yield return [.. state.Values];
            var events = client.WatchAsync(prefix, new WatchOptions { Prefix = true, StartRevision = response.Header.Revision + 1 }, cancellationToken);
            await using var enumerator = events.GetAsyncEnumerator(cancellationToken);
            while (true)
            {
                try
                {
                    if (!await enumerator.MoveNextAsync().ConfigureAwait(false))
                    {
                        break;
                    }
                }
                catch (WatchCompactedException)
                {
                    break;
                }

                var e = enumerator.Current;
                if (e.Kind == WatchEventKind.Put)
                {
                    state[e.Kv.Key] = e.Kv;
                }
                else
                {
                    state.Remove(e.Kv.Key);
                }

                yield return [.. state.Values];
            }
        }
    }

    /// <summary>Bytewise order, as the store orders keys.</summary>
    private sealed class ByteStringComparer : IComparer<ByteString>
    {
        public static readonly ByteStringComparer Instance = new();

        public int Compare(ByteString? x, ByteString? y) => x!.Span.SequenceCompareTo(y!.Span);
    }
}
