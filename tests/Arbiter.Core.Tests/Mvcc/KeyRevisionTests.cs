using System.Runtime.CompilerServices;
using Arbiter.Core.Mvcc;
using Arbiter.Protocol.Mvcc;
using Google.Protobuf;

namespace Arbiter.Core.Tests.Mvcc;

public class KeyRevisionTests
{
    /// <summary>The per-version memory the docs report: an entry is 32 bytes, and a paged-out version needs no object besides.</summary>
    [Fact]
    public void An_entry_is_32_bytes_and_a_paged_out_version_keeps_its_place_in_it()
    {
        Assert.Equal(32, Unsafe.SizeOf<KeyRevision>());

        var entry = new KeyRevision(7, 1, Kv(3));
        entry.PageOut(new MemoryValueSpill());
        Assert.IsAssignableFrom<IValueSpillSegment>(entry.Stored.Value);
        Assert.Equal(Kv(3), entry.LoadKv());
        Assert.Equal(Kv(3).Value.Length, entry.Stored.ValueLength);
        Assert.Equal((7L, 1), (entry.Main, entry.Sub));
    }

    /// <summary>
    /// A snapshot being written reads history entries outside the state's lock while the writer
    /// pages versions out of them: every read must give the whole version, in memory or from its
    /// place, never a segment with a place not yet written. The entries are paged out one by one,
    /// and the reader keeps reading the one being paged out and its neighbours. Caught both ways
    /// of getting it wrong, 5 runs of 5 each: the reference written before the place, and the place
    /// read with plain loads after a volatile read of the reference (the JIT moved them before it).
    /// </summary>
    [Fact]
    public void A_reader_outside_the_lock_never_sees_a_place_half_written()
    {
        const int Entries = 4096;
        const int Rounds = 40;
        var expected = Enumerable.Range(0, Entries).Select(Kv).ToArray();
        var torn = 0;
        var reads = 0L;
        for (var round = 0; round < Rounds && Volatile.Read(ref torn) == 0; round++)
        {
            var spill = new MemoryValueSpill();

            // Something at offset 0 that no entry holds: a place read before it was written points there.
            spill.TryAppend(new KeyValue { Key = ByteString.CopyFromUtf8("not-an-entry") }.ToByteArray(), out _, out _);
            var entries = new KeyRevision[Entries];
            for (var i = 0; i < Entries; i++)
            {
                entries[i] = new KeyRevision(i + 1, 0, expected[i]);
            }

            var done = 0;
            var writing = 0;
            var reader = new Thread(() =>
            {
                while (Volatile.Read(ref done) == 0)
                {
                    var at = Volatile.Read(ref writing);
                    for (var i = Math.Max(0, at - 1); i < Math.Min(Entries, at + 2); i++)
                    {
                        ref readonly var entry = ref entries[i];
                        KeyValue? kv;
                        try
                        {
                            kv = entry.LoadKv();
                        }
                        catch (InvalidProtocolBufferException)
                        {
                            kv = null;
                        }

                        Interlocked.Increment(ref reads);
                        if (!expected[i].Equals(kv))
                        {
                            Interlocked.Increment(ref torn);
                        }
                    }
                }
            });
            reader.Start();
            for (var i = 0; i < Entries; i++)
            {
                Volatile.Write(ref writing, i);
                entries[i].PageOut(spill);
            }

            Volatile.Write(ref done, 1);
            reader.Join();
        }

        Assert.True(reads > Entries, $"only {reads} reads");
        Assert.Equal(0, torn);
    }

    private static KeyValue Kv(int i) => new()
    {
        Key = ByteString.CopyFromUtf8($"key-{i:D5}"),
        Value = ByteString.CopyFromUtf8($"value-{i}"),
        CreateRevision = i + 1,
        ModRevision = i + 1,
        Version = 1,
    };
}
